-- Trace search walks the matching spans newest first until it has `limit` traces (README, "Trace
-- search"). Chosen by measurement on 5M spans (scripts/bench-traces.py): carrying duration_us and
-- trace_id in the index lets a service + minDuration search skip the table, 297 ms -> 3 ms when
-- few spans match. It starts with (service, start_us), so it replaces spans_by_service_time.
DROP INDEX spans_by_service_time;
CREATE INDEX spans_by_service_time_duration ON spans (service, start_us, duration_us, trace_id);
-- The same for searches without a service.
CREATE INDEX spans_by_time_duration ON spans (start_us, duration_us, trace_id);
-- A service and span name; also lists a service's span names one distinct value at a time.
CREATE INDEX spans_by_service_name_time ON spans (service, name, start_us);
-- A service's remote services, one distinct value at a time (without it, 1-3 s for a service of
-- 250k spans).
CREATE INDEX spans_by_service_remote ON spans (service, remote_service) WHERE remote_service IS NOT NULL;
