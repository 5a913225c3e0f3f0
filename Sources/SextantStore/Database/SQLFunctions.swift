internal import Foundation
import GRDB
import SextantModel

/// SQL functions Sextant adds to every connection, for the rollup tables' latency sketches
/// (`LatencySketch.encodedCounts` blobs) and `sources` bit sets.
enum SQLFunctions {
    static func register(_ db: Database) {
        db.add(function: merge)
        db.add(function: DatabaseFunction("sextant_sketch_sum", argumentCount: 1, pure: true, aggregate: SketchSum.self))
        db.add(function: DatabaseFunction("sextant_sketch_build", argumentCount: 2, pure: true, aggregate: SketchBuild.self))
        db.add(function: DatabaseFunction("sextant_bit_or", argumentCount: 1, pure: true, aggregate: BitOr.self))
    }

    /// `sextant_sketch_merge(a, b)`: the sum of two encoded sketches (counts may be negative deltas;
    /// buckets that reach zero are dropped). NULL counts as empty.
    static let merge = DatabaseFunction("sextant_sketch_merge", argumentCount: 2, pure: true) { values in
        var counts = Counts()
        try counts.add(values[0])
        try counts.add(values[1])
        return counts.encoded
    }

    /// `sextant_sketch_sum(blob)`: aggregate sum of encoded sketches.
    struct SketchSum: DatabaseAggregate {
        var counts = Counts()

        mutating func step(_ values: [DatabaseValue]) throws {
            try counts.add(values[0])
        }

        func finalize() -> (any DatabaseValueConvertible)? { counts.encoded }
    }

    /// `sextant_sketch_build(index, count)`: aggregate of (bucket index, count) rows into an encoded sketch.
    struct SketchBuild: DatabaseAggregate {
        var counts = Counts()

        mutating func step(_ values: [DatabaseValue]) throws {
            guard let index = Int.fromDatabaseValue(values[0]), let n = Int.fromDatabaseValue(values[1]) else { return }
            counts.add(index: index, count: n)
        }

        func finalize() -> (any DatabaseValueConvertible)? { counts.encoded }
    }

    /// `sextant_bit_or(int)`: bitwise OR of the values.
    struct BitOr: DatabaseAggregate {
        var bits = 0

        mutating func step(_ values: [DatabaseValue]) {
            bits |= Int.fromDatabaseValue(values[0]) ?? 0
        }

        func finalize() -> (any DatabaseValueConvertible)? { bits }
    }

    /// Counts per sketch index, summed.
    struct Counts {
        var byIndex: [Int: Int] = [:]

        mutating func add(index: Int, count: Int) {
            let n = byIndex[index, default: 0] + count
            byIndex[index] = n == 0 ? nil : n
        }

        mutating func add(_ value: DatabaseValue) throws {
            guard case .blob(let data) = value.storage else { return }
            guard LatencySketch.forEachEncodedCount(data, { add(index: $0, count: $1) }) else {
                throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "malformed latency sketch blob")
            }
        }

        var encoded: Data { Data(LatencySketch.encode(byIndex)) }
    }
}
