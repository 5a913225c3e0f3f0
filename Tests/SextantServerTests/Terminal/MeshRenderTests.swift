import Foundation
import SextantAnalytics
import SextantServer
import Testing

@Suite struct MeshRenderTests {
    static let graphJSON = """
        {"graphType":"workload","windowSeconds":60,"endUnixSeconds":1800000000,"nodes":[
          {"id":"unknown","type":"unknown","namespace":"unknown"},
          {"id":"workload:default:productpage-v1","type":"workload","namespace":"default"},
          {"id":"workload:default:reviews-v2","type":"workload","namespace":"default"},
          {"id":"service:mongodb.default.svc.cluster.local","type":"service","namespace":"default"}],
         "edges":[
          {"source":"unknown","target":"workload:default:productpage-v1","protocol":"http","requests":600,"errors":0,
           "serverErrors":0,"byCode":{"200":600},"rps":10,"errorRate":0,"latencyMs":{"p50":12.5,"p90":20,"p95":25,"p99":41.25,"mean":14},
           "requestBytes":0,"responseBytes":0,"sources":["spans","accesslog"]},
          {"source":"workload:default:productpage-v1","target":"workload:default:reviews-v2","protocol":"http","requests":60,
           "errors":12,"serverErrors":12,"byCode":{"200":48,"503":12},"rps":1,"errorRate":0.2,
           "latencyMs":{"p50":3,"p90":4,"p95":5,"p99":250,"mean":9},"requestBytes":0,"responseBytes":0,"sources":["spans"]},
          {"source":"workload:default:reviews-v2","target":"service:mongodb.default.svc.cluster.local","protocol":"tcp",
           "requests":5,"errors":0,"serverErrors":0,"byCode":{"0":5},"rps":0.083,"errorRate":0,"requestBytes":10,
           "responseBytes":20,"sources":["accesslog"]}]}
        """

    func graph() throws -> ServiceGraph {
        try JSONDecoder().decode(ServiceGraph.self, from: Data(Self.graphJSON.utf8))
    }

    @Test func theTableAlignsColumnsAndNamesNodesAsPeopleReadThem() throws {
        let text = MeshRender.graphTable(try graph(), colour: false)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("SOURCE"))
        #expect(lines[1].hasPrefix("unknown "))
        #expect(lines[2].contains("default/productpage-v1  default/reviews-v2"))
        #expect(lines[3].contains("mongodb.default.svc.cluster.local"))
        // Numbers are right-aligned: each row's P99 ends where the header's does.
        let header = lines[0].range(of: "P99 MS")!.upperBound.utf16Offset(in: lines[0])
        for (line, p99) in zip(lines.dropFirst(), ["41.25", "250", "-"]) {
            #expect(line.range(of: " \(p99) ", options: .backwards)?.upperBound.utf16Offset(in: line) == header + 1, "\(line)")
        }
        #expect(lines.allSatisfy { !$0.hasSuffix(" ") && !$0.contains("\u{1B}") })
    }

    @Test func colourMarksFailingEdgesOnlyWhenAsked() throws {
        let coloured = MeshRender.graphTable(try graph(), colour: true)
        let failing = try #require(coloured.split(separator: "\n").first { $0.contains("reviews-v2 ") && $0.contains(" 250 ") })
        #expect(failing.hasPrefix("\u{1B}[31m"))
        #expect(coloured.hasPrefix("\u{1B}[1m"))
        let edges = try graph().edges
        #expect(edges.map(MeshRender.health) == [.plain, .failure, .plain])
    }

    @Test func topOrdersByTheChosenFigure() throws {
        func firstTarget(_ order: MeshRender.TopOrder) throws -> String {
            String(MeshRender.top(try graph(), by: order, limit: 1, colour: false).split(separator: "\n")[1])
        }
        #expect(try firstTarget(.errors).contains("default/reviews-v2"))
        #expect(try firstTarget(.p99).contains("default/reviews-v2"))
        #expect(try firstTarget(.rps).hasPrefix("unknown"))
        #expect(MeshRender.top(try graph(), by: .rps, limit: 2, colour: false).split(separator: "\n").count == 3)
    }

    @Test func dotAndMermaidDrawEveryNodeAndEdge() throws {
        let dot = MeshRender.dot(try graph())
        #expect(dot.hasPrefix("digraph mesh {"))
        #expect(dot.contains(#""workload:default:productpage-v1" -> "workload:default:reviews-v2" [label="1 rps, 20.0% errors, p99 250 ms", color=red];"#))
        #expect(dot.contains(#"color=blue, style=dashed"#))
        #expect(dot.components(separatedBy: " -> ").count == 4)
        let mermaid = MeshRender.mermaid(try graph())
        #expect(mermaid.hasPrefix("flowchart LR\n"))
        #expect(mermaid.contains(#"n1["default/productpage-v1"]"#))
        #expect(mermaid.contains(#"n2 -.->|"0.083 rps"| n3"#))
        #expect(mermaid.components(separatedBy: "|\"").count == 4)
    }

    @Test func numbersKeepAtMostThreeDecimals() {
        #expect(MeshRender.number(0.0834) == "0.083")
        #expect(MeshRender.number(10) == "10")
        #expect(MeshRender.number(2.5) == "2.5")
        #expect(MeshRender.percent(0.1875) == "18.8%")
        #expect(MeshRender.name("versionedApp:default:reviews:v2") == "default/reviews:v2")
        #expect(MeshRender.name("service:details.default.svc.cluster.local") == "details.default.svc.cluster.local")
        // A node id of a shape it does not know stays as it is, whatever its kind.
        #expect(MeshRender.name("workload:default") == "workload:default")
        #expect(MeshRender.name("workload:default:details-v1") == "default/details-v1")
    }

    @Test func theDiffRanksEdgesAndNodesTogether() throws {
        let figures = #"{"requests":120,"rps":2,"errors":60,"errorRate":0.5,"p99Ms":12}"#
        let json = """
            {"graphType":"workload","windowSeconds":900,"minRequests":20,
             "current":{"startUnixSeconds":1800000000,"endUnixSeconds":1800000900},
             "baseline":{"startUnixSeconds":1799999100,"endUnixSeconds":1800000000},
             "edges":[{"source":"workload:default:productpage-v1","target":"workload:default:details-v1","protocol":"http",
               "score":60,"current":\(figures),"baseline":\(figures),
               "changes":[{"kind":"newErrors","before":0,"after":0.5,"description":"new errors: 60 of 120 (50.0%)"}]}],
             "nodes":[{"id":"workload:default:details-v1","score":70,"current":\(figures),"baseline":\(figures),
               "changes":[{"kind":"newErrors","before":0,"after":0.5,"description":"new errors: 70 of 140 (50.0%)"}]}]}
            """
        let text = MeshRender.diff(try JSONDecoder().decode(GraphDiff.self, from: Data(json.utf8)), colour: false)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "2027-01-15 08:00:00–2027-01-15 08:15:00 against 2027-01-15 07:45:00–2027-01-15 08:00:00")
        #expect(lines[2].contains("node default/details-v1"))
        #expect(lines[3].contains("default/productpage-v1 → default/details-v1"))
    }
}
