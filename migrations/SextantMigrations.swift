import Foundation

/// The numbered SQL migrations in this folder, shipped as resources of this target so the
/// binary finds them from any working directory.
package enum SextantMigrations {
    /// Every migration as (name, SQL), in the order their numbers give.
    package static func all() throws -> [(name: String, sql: String)] {
        guard let folder = Bundle.module.resourceURL else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        return try names.map { file in
            let sql = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            return (name: String(file.dropLast(4)), sql: sql)
        }
    }
}
