package import GRDB
package import SextantModel

// Ids are stored as lowercase hex text (32 digits for a trace, 16 for a span), the form Zipkin's
// API answers with and the query paths look up.

extension TraceID: DatabaseValueConvertible {
    package var databaseValue: DatabaseValue { hex.databaseValue }

    package static func fromDatabaseValue(_ dbValue: DatabaseValue) -> TraceID? {
        String.fromDatabaseValue(dbValue).flatMap { TraceID(hex: $0) }
    }
}

extension SpanID: DatabaseValueConvertible {
    package var databaseValue: DatabaseValue { hex.databaseValue }

    package static func fromDatabaseValue(_ dbValue: DatabaseValue) -> SpanID? {
        String.fromDatabaseValue(dbValue).flatMap { SpanID(hex: $0) }
    }
}
