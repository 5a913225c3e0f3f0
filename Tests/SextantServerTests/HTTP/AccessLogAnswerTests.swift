import Foundation
import NIOCore
import Testing

@testable import SextantServer

/// The answer to an access-log upload is written directly when it holds no errors: it must be
/// the text `JSONResponse` writes for the same answer, to the byte.
@Suite struct AccessLogAnswerTests {
    @Test(arguments: [(0, 0, 0), (50, 48, 2), (1, 0, 1), (123_456_789, 123_456_700, 89)])
    func anAnswerWithoutErrorsIsTheEncodersText(counts: (calls: Int, connections: Int, rejected: Int)) throws {
        let answer = IngestController.AccessLogAnswer(
            accepted: counts.calls + counts.connections, calls: counts.calls, connections: counts.connections,
            rejected: counts.rejected, errors: [])
        #expect(String(buffer: try answer.json) == String(buffer: try JSONResponse.body(answer)))
    }

    @Test func errorsAreEscapedByTheEncoder() throws {
        let answer = IngestController.AccessLogAnswer(
            accepted: 1, calls: 1, connections: 0, rejected: 1, errors: [#"line 2: "start_time" is not a time"#])
        let text = String(buffer: try answer.json)
        #expect(text == String(buffer: try JSONResponse.body(answer)))
        let decoded = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(decoded?["errors"] as? [String] == [#"line 2: "start_time" is not a time"#])
    }
}
