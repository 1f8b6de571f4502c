// report: writers for a load run's results (JSON, per-second CSV, self-contained HTML with
// inline SVG charts) and the text lines the CLI prints.
#pragma once

#include <string>

#include "runtime/load/results.hpp"

namespace troupe::load {

/// Everything in run_result, for scripts (percentiles in ms, rates per second).
std::string to_json(const run_result& r);

/// One row per second: second,phase,sent,ok,errors,p50_ms,p99_ms,lag_max_ms.
std::string to_csv(const run_result& r);

/// One HTML page with no external resources: a phase table and SVG charts of throughput,
/// latency percentiles and errors over time (phase boundaries marked) and a latency histogram.
std::string to_html(const run_result& r);

/// "  12s  warm-up  rate 200/s  ok 199  err 0  p50 3.1 ms  p99 9.8 ms"
std::string live_line(const second_row& row, const run_result& context);

/// The end-of-run table: one block per phase with counts, errors by status, throughput,
/// goodput, percentiles, accuracy and the generator's lag.
std::string summary_table(const run_result& r);

} // namespace troupe::load
