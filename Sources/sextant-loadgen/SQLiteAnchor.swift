import Foundation
import GRDBSQLite
import SextantLoadgen
import SextantModel

/// The ceiling of the naive design: the same span rows inserted straight through the sqlite3 C
/// API, (trace_id, span_id) primary key plus a (service, start) index, WAL, `synchronous=FULL`,
/// prepared statements, 1,000 rows per transaction (DESIGN.md, "Measured limits").
struct SQLiteAnchorReport {
    var rows: Int
    var seconds: Double
    var bytesPerRow: Double
    var rowsPerSecond: Double { Double(rows) / seconds }
}

func rawSQLiteAnchor(round: BookinfoRound, rows: Int, rowsPerTransaction: Int = 1000) throws -> SQLiteAnchorReport {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-loadgen-sqlite-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var db: OpaquePointer?
    guard sqlite3_open(folder + "/anchor.db", &db) == SQLITE_OK, let db else { throw LoadError("sqlite3_open failed") }
    defer { sqlite3_close(db) }
    func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw LoadError("\(sql): \(String(cString: sqlite3_errmsg(db)))")
        }
    }
    try exec("PRAGMA journal_mode=WAL")
    try exec("PRAGMA synchronous=FULL")
    try exec(
        """
        CREATE TABLE spans (trace_id BLOB NOT NULL, span_id BLOB NOT NULL, parent_id BLOB, service TEXT NOT NULL,
          name TEXT NOT NULL, kind INTEGER NOT NULL, start_us INTEGER NOT NULL, duration_us INTEGER NOT NULL,
          attributes TEXT NOT NULL, PRIMARY KEY (trace_id, span_id));
        CREATE INDEX spans_by_service_start ON spans (service, start_us);
        """)
    var statement: OpaquePointer?
    guard
        sqlite3_prepare_v2(
            db, "INSERT OR IGNORE INTO spans VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &statement, nil)
            == SQLITE_OK, let statement
    else { throw LoadError("prepare failed") }
    defer { sqlite3_finalize(statement) }
    // Rows as the store would hold them: binary ids, tags as JSON text, prepared before the clock.
    struct Row {
        var trace: [UInt8]
        var span: [UInt8]
        var parent: [UInt8]?
        var service: String
        var name: String
        var kind: Int32
        var start: Int64
        var duration: Int64
        var attributes: String
    }
    var spans: [Row] = []
    for (index, workload) in BookinfoRound.workloads.enumerated() {
        for side in round.sides[index] {
            spans.append(
                Row(
                    trace: side.traceID, span: side.spanID, parent: side.parentID, service: workload.serviceName,
                    name: "\(side.calleeService).default.svc.cluster.local:9080/*", kind: side.server ? 2 : 3,
                    start: BodyTemplate.templateBaseMicros + side.startMicros, duration: side.durationMicros,
                    attributes: "{" + JSONPayloads.tags(side, workload) + "}"))
        }
    }
    var random = SplitMix64(seed: 42)
    let rowsData: [Row] = (0..<rows).map { i in
        var row = spans[i % spans.count]
        // Every row a new trace, as new traces arrive: random bytes (a random key is the cost).
        for k in 0..<8 { row.trace[k] = UInt8(truncatingIfNeeded: random.next() >> (8 * UInt64(k))) }
        return row
    }
    let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    let start = Date()
    var index = 0
    while index < rowsData.count {
        try exec("BEGIN")
        for row in rowsData[index..<min(index + rowsPerTransaction, rowsData.count)] {
            sqlite3_bind_blob(statement, 1, row.trace, Int32(row.trace.count), transient)
            sqlite3_bind_blob(statement, 2, row.span, Int32(row.span.count), transient)
            if let parent = row.parent {
                sqlite3_bind_blob(statement, 3, parent, Int32(parent.count), transient)
            } else {
                sqlite3_bind_null(statement, 3)
            }
            sqlite3_bind_text(statement, 4, row.service, -1, transient)
            sqlite3_bind_text(statement, 5, row.name, -1, transient)
            sqlite3_bind_int(statement, 6, row.kind)
            sqlite3_bind_int64(statement, 7, row.start)
            sqlite3_bind_int64(statement, 8, row.duration)
            sqlite3_bind_text(statement, 9, row.attributes, -1, transient)
            guard sqlite3_step(statement) == SQLITE_DONE else { throw LoadError(String(cString: sqlite3_errmsg(db))) }
            sqlite3_reset(statement)
        }
        try exec("COMMIT")
        index += rowsPerTransaction
    }
    let seconds = Date().timeIntervalSince(start)
    try exec("PRAGMA wal_checkpoint(TRUNCATE)")
    let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/anchor.db")[.size] as? Int) ?? 0
    return SQLiteAnchorReport(rows: rows, seconds: seconds, bytesPerRow: Double(size) / Double(rows))
}

