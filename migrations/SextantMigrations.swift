/// The numbered SQL migrations in this folder, compiled into the binary (`embedInCode` in
/// Package.swift), so that the binary needs no files beside it.
package enum SextantMigrations {
    /// Every migration as (name, SQL), in the order their numbers give.
    package static func all() -> [(name: String, sql: String)] {
        embedded.map { (name: $0.name, sql: String(decoding: $0.bytes, as: UTF8.self)) }
    }

    private static let embedded: [(name: String, bytes: [UInt8])] = [
        ("0001_create_calls_and_spans", PackageResources._001_create_calls_and_spans_sql),
        ("0002_create_tcp_connections_and_logs", PackageResources._002_create_tcp_connections_and_logs_sql),
        ("0003_create_metric_series", PackageResources._003_create_metric_series_sql),
        ("0004_create_call_rollups", PackageResources._004_create_call_rollups_sql),
        ("0005_index_spans_for_traces", PackageResources._005_index_spans_for_traces_sql),
        ("0006_create_metric_rollups", PackageResources._006_create_metric_rollups_sql),
        ("0007_rollup_sketch_blobs_and_tiers", PackageResources._007_rollup_sketch_blobs_and_tiers_sql),
        ("0008_span_blocks", PackageResources._008_span_blocks_sql),
        ("0009_calls_without_random_key_indexes", PackageResources._009_calls_without_random_key_indexes_sql),
        ("0010_call_examples", PackageResources._010_call_examples_sql),
        ("0011_call_blocks", PackageResources._011_call_blocks_sql),
        ("0012_call_blocks_rolled_up_and_row_ids", PackageResources._012_call_blocks_rolled_up_and_row_ids_sql),
        ("0013_metric_chunks", PackageResources._013_metric_chunks_sql),
        ("0014_istio_counters", PackageResources._014_istio_counters_sql),
    ]
}
