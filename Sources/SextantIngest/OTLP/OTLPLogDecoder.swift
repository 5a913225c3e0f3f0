internal import Foundation
package import SextantModel
package import SextantWire

/// Turns an OTLP `ExportLogsServiceRequest` into Envoy access-log calls (records of Envoy's
/// OpenTelemetry access logger, recognised by their access-log attributes) and application log
/// records (everything else).
package struct OTLPLogDecoder: Sendable {
    package init() {}

    package func decode(_ request: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest) -> IngestBatch {
        var batch = IngestBatch()
        for (r, resourceLogs) in request.resourceLogs.enumerated() {
            let resource = ResourceIdentity(resourceLogs.resource)
            let nodeID = resource.attributes["node_name"] ?? resource.attributes["service.instance.id"]
            let proxy = nodeID.flatMap(NodeIdentity.init(nodeID:))?.workload
            for (s, scope) in resourceLogs.scopeLogs.enumerated() {
                for (i, record) in scope.logRecords.enumerated() {
                    let location = "resource_logs[\(r)].scope_logs[\(s)].log_records[\(i)]"
                    var attributes = Attributes(record.attributes.textMap)
                    let traceID = record.traceID.count == 16 ? HexBytes.string(record.traceID) : nil
                    if attributes["start_time"] != nil,
                        attributes["upstream_cluster"] != nil || attributes["response_code"] != nil
                    {
                        if attributes["trace_id"] == nil, let traceID { attributes["trace_id"] = traceID }
                        do throws(RecordError) {
                            try AccessLogLine(attributes: attributes).record(
                                defaultProxy: proxy, location: location, channel: .otlpLogs, into: &batch)
                        } catch {
                            batch.rejected.append(error)
                        }
                        continue
                    }
                    let nanos = record.timeUnixNano > 0 ? record.timeUnixNano : record.observedTimeUnixNano
                    guard nanos > 0 else {
                        batch.rejected.append(
                            RecordError(location: location, message: "neither time_unix_nano nor observed_time_unix_nano is set"))
                        continue
                    }
                    batch.logs.append(
                        LogRecord(
                            timeMicros: Int64(nanos / 1000), service: resource.service,
                            severityNumber: record.severityNumber.rawValue, severityText: record.severityText,
                            body: record.body.text, traceID: traceID,
                            spanID: record.spanID.count == 8 ? HexBytes.string(record.spanID) : nil,
                            attributes: attributes.dictionary))
                }
            }
        }
        return batch
    }
}
