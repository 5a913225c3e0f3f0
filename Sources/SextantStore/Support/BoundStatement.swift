import GRDB
import GRDBSQLite
import SextantModel

/// A cached statement run through SQLite's C API with its values bound in place: the writer's
/// per-record statements skip building `StatementArguments` (a boxed value per column).
/// Used only for statements that return no rows, inside the writer's transaction.
struct BoundStatement {
    /// A value bound to one parameter.
    protocol Value {
        func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32
    }

    private let handle: OpaquePointer
    private let db: Database

    init(_ statement: Statement, _ db: Database) {
        handle = statement.sqliteStatement
        self.db = db
    }

    /// Binds `values` to the parameters in order and steps the statement to its end.
    func run(_ values: (any Value)?...) throws {
        try run { bind in
            for value in values { try bind(value) }
        }
    }

    /// Binds what `body` hands its binder, parameter after parameter, and steps the statement to
    /// its end.
    func run(binding body: (_ bind: (_ value: (any Value)?) throws -> Void) throws -> Void) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        var next: Int32 = 1
        try body { value in
            let code = value?.bindValue(to: handle, at: next) ?? sqlite3_bind_null(handle, next)
            if code != SQLITE_OK { try fail(code) }
            next += 1
        }
        try step()
    }

    private func step() throws {
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { break }
            if code != SQLITE_ROW { try fail(code) }
        }
        sqlite3_reset(handle)
    }

    private func fail(_ code: Int32) throws -> Never {
        let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
        sqlite3_reset(handle)
        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: String(cString: sqlite3_sql(handle)))
    }
}

extension Int64: BoundStatement.Value {
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int64(statement, index, self) }
}

extension Int: BoundStatement.Value {
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 {
        sqlite3_bind_int64(statement, index, Int64(self))
    }
}

extension [UInt8]: BoundStatement.Value {
    /// A blob; SQLite copies the bytes before this returns.
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 {
        withUnsafeBytes { bytes in
            sqlite3_bind_blob(
                statement, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count),
                unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
    }
}

extension Bool: BoundStatement.Value {
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int(statement, index, self ? 1 : 0) }
}

extension String: BoundStatement.Value {
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 {
        var text = self
        return text.withUTF8 { BoundStatement.bindText(UnsafeRawBufferPointer($0), to: statement, at: index) }
    }
}

extension TraceID: BoundStatement.Value {
    /// As the store keeps it: 32 lowercase hex digits.
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 1) { digits in
            HexDigits.write(high, into: digits)
            HexDigits.write(low, into: UnsafeMutableRawBufferPointer(rebasing: digits[16...]))
            return BoundStatement.bindText(UnsafeRawBufferPointer(digits), to: statement, at: index)
        }
    }
}

extension SpanID: BoundStatement.Value {
    /// As the store keeps it: 16 lowercase hex digits.
    func bindValue(to statement: OpaquePointer, at index: Int32) -> Int32 {
        withUnsafeTemporaryAllocation(byteCount: 16, alignment: 1) { digits in
            HexDigits.write(value, into: digits)
            return BoundStatement.bindText(UnsafeRawBufferPointer(digits), to: statement, at: index)
        }
    }
}

extension BoundStatement {
    /// Binds UTF-8 bytes as text; SQLite copies them before this returns.
    static func bindText(_ bytes: UnsafeRawBufferPointer, to statement: OpaquePointer, at index: Int32) -> Int32 {
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
            return sqlite3_bind_text(statement, index, "", 0, transient)
        }
        return sqlite3_bind_text(
            statement, index, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), transient)
    }
}
