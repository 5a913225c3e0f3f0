-- Trace search walks matching spans newest first (see README, "Trace search"):
-- searches without a service walk the start time;
CREATE INDEX spans_by_time ON spans (start_us);
-- a service and span name walk this one, which also lists a service's span names one distinct
-- value at a time.
CREATE INDEX spans_by_service_name_time ON spans (service, name, start_us);
