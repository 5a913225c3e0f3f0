#if canImport(Glibc)
import Glibc
#endif

/// What the C library's allocator offers beyond `malloc` and `free`.
package enum Malloc {
    /// glibc's `malloc_trim`, which its Swift module does not export; nil on other C libraries.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    /// glibc's `mallopt`, looked up the same way.
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    /// Caps the arenas glibc makes (`M_ARENA_MAX`). By default it makes up to eight per core as
    /// threads contend, and each keeps what was freed in it: the server's pool, NIO and writer
    /// threads then hold a few arenas' worth of free memory each.
    package static func limitArenas(to count: Int32) {
        let arenaMax: Int32 = -8
        _ = mallopt?(arenaMax, count)
    }

    /// Hands memory that is free back to the system. glibc keeps what a burst freed for reuse,
    /// in the arena of whichever thread freed it, so a burst on a few threads leaves the resident
    /// size high long after (a merge of span blocks, say).
    package static func trim() {
        _ = mallocTrim?(0)
    }
}
