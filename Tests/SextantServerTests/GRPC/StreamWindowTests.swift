import Foundation
import GRDB
import GRPCCore
import Logging
import SextantServer
import SextantStore
import SextantWire
import Testing

/// Waits until `condition` holds, for at most ten seconds.
func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<1000 {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Entries an ALS message carries.
func entryCount(_ message: Envoy_Service_Accesslog_V3_StreamAccessLogsMessage) -> Int {
    message.httpLogs.logEntry.count + message.tcpLogs.logEntry.count
}

@Suite struct StreamWindowTests {
    @Test func anALSStreamReadsOnWhileItsMessagesWaitForTheirCommitAndAnswersAfterTheLast() async throws {
        let messages = try alsMessages("productpage-v1")
        try #require(messages.count == 5)
        try await withCollector(writerRunning: false, configure: { $0.server.streamWindow.maxMessages = 3 }) { collector in
            let writer = collector.writer
            try await withGRPC(collector) { client in
                let als = Envoy_Service_Accesslog_V3_AccessLogService.Client(wrapping: client)
                try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        _ = try await als.streamAccessLogs(requestProducer: { stream in
                            for message in messages { try await stream.write(message) }
                        })
                        return "stream"
                    }
                    // No commit happens, yet three messages are read and queued in order: the window.
                    let window = messages.prefix(3).reduce(0) { $0 + entryCount($1) }
                    #expect(try await eventually { writer.statistics.queuedRecords == window })
                    try await Task.sleep(for: .milliseconds(200))
                    #expect(writer.statistics.queuedRecords == window)
                    group.addTask {
                        try await writer.run()
                        return "writer"
                    }
                    // The stream is answered once all five are committed.
                    #expect(try await group.next() == "stream")
                    let total = messages.reduce(0) { $0 + entryCount($1) }
                    #expect(writer.statistics.committedRecords == total)
                    #expect(writer.statistics.queuedRecords == 0)
                    group.cancelAll()
                }
            }
        }
    }

    @Test func aBadMessageFailsTheStreamAfterTheMessagesBeforeItAreCommitted() async throws {
        var messages = Array(try alsMessages("productpage-v1").prefix(3))
        messages[2].identifier.node.id = ""
        messages[2].identifier.node.metadata = .init()
        try await withCollector { collector in
            try await withGRPC(collector) { client in
                let als = Envoy_Service_Accesslog_V3_AccessLogService.Client(wrapping: client)
                let sent = messages
                await #expect {
                    _ = try await als.streamAccessLogs(requestProducer: { stream in
                        for message in sent { try await stream.write(message) }
                    })
                } throws: { ($0 as? RPCError)?.code == .invalidArgument }
                let before = messages.prefix(2).reduce(0) { $0 + entryCount($1) }
                #expect(collector.writer.statistics.committedRecords == before)
                #expect(collector.writer.statistics.queuedRecords == 0)
            }
        }
    }

    @Test func aFullQueueFailsTheStreamAsResourceExhaustedAndKeepsWhatWasQueued() async throws {
        let messages = Array(try alsMessages("productpage-v1").prefix(2))
        try await withCollector(writerRunning: false, configure: { $0.writer.maxQueuedRecords = 1 }) { collector in
            let writer = collector.writer
            try await withGRPC(collector) { client in
                let als = Envoy_Service_Accesslog_V3_AccessLogService.Client(wrapping: client)
                try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        do {
                            _ = try await als.streamAccessLogs(requestProducer: { stream in
                                for message in messages { try await stream.write(message) }
                            })
                            return "ok"
                        } catch let error as RPCError {
                            return "\(error.code)"
                        }
                    }
                    // The first message is queued; the second is refused; the answer waits for the first's commit.
                    #expect(try await eventually { writer.statistics.queuedRecords == entryCount(messages[0]) })
                    try await Task.sleep(for: .milliseconds(200))
                    group.addTask {
                        try await writer.run()
                        return "writer"
                    }
                    #expect(try await group.next() == "\(RPCError.Code.resourceExhausted)")
                    #expect(writer.statistics.committedRecords == entryCount(messages[0]))
                    group.cancelAll()
                }
            }
        }
    }
}
