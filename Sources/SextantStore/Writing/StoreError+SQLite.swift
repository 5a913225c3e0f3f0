import GRDB

extension StoreError {
    /// Classifies a failed commit, so that senders learn whether to retry and operators why.
    /// Nothing of the transaction was stored; SQLite rolled it back.
    init(committing error: any Error) {
        guard let error = error as? DatabaseError else {
            self.init(.failed, "could not store the records", cause: error)
            return
        }
        switch error.resultCode {
        case .SQLITE_FULL:
            self.init(
                .storageFull,
                "the database is full (no space left on the disk, or --max-db-size reached); "
                    + "ingest resumes once space is freed",
                cause: error)
        case .SQLITE_READONLY:
            self.init(.readOnly, "the database is read-only; ingest resumes once it can be written", cause: error)
        case .SQLITE_IOERR:
            self.init(.failed, "the database could not write to the disk (I/O error)", cause: error)
        case .SQLITE_CANTOPEN:
            self.init(.failed, "the database file cannot be opened for writing", cause: error)
        default:
            self.init(.failed, "could not store the records", cause: error)
        }
    }
}
