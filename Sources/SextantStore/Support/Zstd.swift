internal import CZstd
import Synchronization

/// zstd one-shot compression of whole buffers, with contexts kept for the next call.
///
/// Making a context costs more than compressing a block of a few kilobytes: it allocates and
/// clears its tables and probes the CPU (`cpuid`, which a virtual machine traps). Receivers
/// compress a block per request, so each call takes a context from a small pool and gives it
/// back.
enum Zstd {
    /// `prefix`, then `input` compressed, in an array of exactly that size (a block may wait in
    /// the writer's queue, whose bounds count its bytes). The compressed bytes go to scratch room
    /// that is not cleared first, then once into the array.
    static func compress(_ input: [UInt8], level: Int32, after prefix: [UInt8]) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        let context = compressors.take() ?? ZSTD_createCCtx()
        defer { compressors.give(context) }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bound, 1), alignment: 16)
        defer { scratch.deallocate() }
        let written = input.withUnsafeBytes { source in
            ZSTD_compressCCtx(context, scratch.baseAddress, bound, source.baseAddress, source.count, level)
        }
        // Compressing a buffer into a buffer of its bound cannot fail.
        precondition(ZSTD_isError(written) == 0, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
        return [UInt8](unsafeUninitializedCapacity: prefix.count + written) { target, count in
            _ = target.initialize(fromContentsOf: prefix)
            if written > 0 {
                UnsafeMutableRawPointer(target.baseAddress! + prefix.count)
                    .copyMemory(from: scratch.baseAddress!, byteCount: written)
            }
            count = prefix.count + written
        }
    }

    static func decompress(_ input: ArraySlice<UInt8>, size: Int) throws(SpanBlock.FormatError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        let context = decompressors.take() ?? ZSTD_createDCtx()
        defer { decompressors.give(context) }
        let written = out.withUnsafeMutableBytes { target in
            input.withUnsafeBytes { source in
                ZSTD_decompressDCtx(context, target.baseAddress, size, source.baseAddress, source.count)
            }
        }
        guard ZSTD_isError(written) == 0, written == size else {
            throw SpanBlock.FormatError(description: "span block does not decompress to its size")
        }
        return out
    }

    private static let compressors = ContextPool(free: { ZSTD_freeCCtx($0) })
    private static let decompressors = ContextPool(free: { ZSTD_freeDCtx($0) })
}

/// Idle zstd contexts, at most `limit` kept (one per thread that compresses at once is enough).
private final class ContextPool: Sendable {
    /// A context is used by one call at a time: the pool hands each out once until it is given back.
    private struct Idle: @unchecked Sendable {
        var contexts: [OpaquePointer] = []
    }

    private let idle = Mutex(Idle())
    private let free: @Sendable (OpaquePointer) -> Void
    private let limit = 8

    init(free: @escaping @Sendable (OpaquePointer) -> Void) {
        self.free = free
    }

    func take() -> OpaquePointer? {
        idle.withLock { $0.contexts.popLast() }
    }

    func give(_ context: OpaquePointer?) {
        guard let context else { return }
        let kept = idle.withLock { idle in
            guard idle.contexts.count < limit else { return false }
            idle.contexts.append(context)
            return true
        }
        if !kept { free(context) }
    }
}
