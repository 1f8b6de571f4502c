// stage_cutter: candidate cut positions from value lifetimes, and a min-max dynamic program.
#include "runtime/planner/stage_cutter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace troupe::planner {

std::vector<cut_candidate> cut_candidates(const model_cost& cost, double rows, size_t slack) {
  const size_t n = cost.ops.size();
  std::vector<cut_candidate> out;
  if (n < 2)
    return out;
  std::vector<size_t> running_before(n + 1, 0); // non-folded ops in [0, i)
  for (size_t i = 0; i < n; ++i)
    running_before[i + 1] = running_before[i] + (cost.ops[i].folded ? 0 : 1);
  std::vector<bool> cuttable(n - 1, false);
  size_t fewest = std::numeric_limits<size_t>::max();
  for (size_t i = 0; i + 1 < n; ++i) {
    cut_candidate c;
    c.after = i;
    bool blocked = false;
    for (const auto& v : cost.values) {
      if (v.producer > static_cast<int>(i) || v.last_use <= static_cast<int>(i))
        continue;
      if (v.shape_derived)
        blocked = true;
      c.crossing.push_back(v.name);
      c.crossing_bytes += v.bytes.at(rows);
    }
    const bool both_sides_run =
        running_before[i + 1] > 0 && running_before[n] - running_before[i + 1] > 0;
    cuttable[i] = !blocked && both_sides_run && !c.crossing.empty();
    if (cuttable[i])
      fewest = std::min(fewest, c.crossing.size());
    out.push_back(std::move(c));
  }
  for (size_t i = 0; i + 1 < n; ++i)
    out[i].allowed = cuttable[i] && out[i].crossing.size() <= fewest + slack;
  return out;
}

std::vector<double> live_bytes(const model_cost& cost, double rows) {
  std::vector<double> live(cost.ops.size(), 0.0);
  for (const auto& v : cost.values) {
    const int first = std::max(v.producer, 0);
    const int last = std::min(v.last_use, static_cast<int>(cost.ops.size()) - 1);
    for (int i = first; i <= last; ++i)
      live[static_cast<size_t>(i)] += v.bytes.at(rows);
  }
  return live;
}

namespace {

struct score {
  double slowest = std::numeric_limits<double>::infinity();
  double bytes = std::numeric_limits<double>::infinity();
  int previous = -1; // index into the allowed list of the cut before; -1 = start
};

bool better(double slowest_a, double bytes_a, const score& b) {
  const double tol = 1e-9 * std::max(1.0, std::abs(b.slowest));
  if (slowest_a < b.slowest - tol)
    return true;
  return slowest_a <= b.slowest + tol && bytes_a < b.bytes;
}

} // namespace

expected<stage_cut> cut_stages(std::span<const double> op_seconds,
                               std::span<const cut_candidate> candidates, size_t stages,
                               double link_bytes_per_s) {
  const size_t n = op_seconds.size();
  if (stages == 0)
    return make_error(errc::invalid_argument, "a pipeline needs at least one stage");
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i)
    prefix[i + 1] = prefix[i] + op_seconds[i];
  stage_cut cut;
  if (stages == 1) {
    cut.stage_seconds = {prefix[n]};
    cut.max_stage_seconds = prefix[n];
    return cut;
  }
  std::vector<const cut_candidate*> allowed;
  for (const auto& c : candidates)
    if (c.allowed && c.after + 1 < n)
      allowed.push_back(&c);
  if (allowed.size() + 1 < stages)
    return make_error(errc::unsupported,
                      "only {} places to cut (where few tensors cross) for {} stages; at most {} "
                      "stages are possible", allowed.size(), stages, allowed.size() + 1);
  auto send = [&](const cut_candidate& c) {
    return link_bytes_per_s > 0 ? c.crossing_bytes / link_bytes_per_s : 0.0;
  };
  // compute of ops (a, b]; a = -1 is the start
  auto span_seconds = [&](long a, size_t b) { return prefix[b + 1] - prefix[static_cast<size_t>(a + 1)]; };

  const size_t m = allowed.size();
  // best[k][j]: stages 0..k with stage k ending at allowed cut j
  std::vector<std::vector<score>> best(stages - 1, std::vector<score>(m));
  for (size_t j = 0; j < m; ++j) {
    best[0][j].slowest = span_seconds(-1, allowed[j]->after) + send(*allowed[j]);
    best[0][j].bytes = allowed[j]->crossing_bytes;
  }
  for (size_t k = 1; k + 1 < stages; ++k)
    for (size_t j = 0; j < m; ++j)
      for (size_t i = 0; i < j; ++i) {
        const auto& prev = best[k - 1][i];
        if (!std::isfinite(prev.slowest))
          continue;
        const double s = std::max(prev.slowest, span_seconds(static_cast<long>(allowed[i]->after),
                                                             allowed[j]->after) +
                                                    send(*allowed[j]));
        const double b = prev.bytes + allowed[j]->crossing_bytes;
        if (better(s, b, best[k][j]))
          best[k][j] = score{s, b, static_cast<int>(i)};
      }
  score final_score;
  int last = -1;
  for (size_t i = 0; i < m; ++i) {
    const auto& prev = best[stages - 2][i];
    if (!std::isfinite(prev.slowest))
      continue;
    const double s = std::max(prev.slowest,
                              span_seconds(static_cast<long>(allowed[i]->after), n - 1));
    if (better(s, prev.bytes, final_score)) {
      final_score = score{s, prev.bytes, static_cast<int>(i)};
      last = static_cast<int>(i);
    }
  }
  if (last < 0)
    return make_error(errc::internal, "no cut into {} stages found", stages);
  std::vector<size_t> chosen;
  for (int k = static_cast<int>(stages) - 2, j = last; k >= 0; --k) {
    chosen.push_back(static_cast<size_t>(j));
    j = best[static_cast<size_t>(k)][static_cast<size_t>(j)].previous;
  }
  std::reverse(chosen.begin(), chosen.end());
  cut.max_stage_seconds = final_score.slowest;
  long start = -1;
  for (size_t j : chosen) {
    const auto& c = *allowed[j];
    cut.after.push_back(c.after);
    cut.boundaries.push_back(c.crossing);
    cut.boundary_bytes.push_back(c.crossing_bytes);
    cut.stage_seconds.push_back(span_seconds(start, c.after));
    start = static_cast<long>(c.after);
  }
  cut.stage_seconds.push_back(span_seconds(start, n - 1));
  return cut;
}

std::pair<size_t, size_t> stage_range(const stage_cut& cut, size_t stage, size_t op_count) {
  const size_t first = stage == 0 ? 0 : cut.after[stage - 1] + 1;
  const size_t last = stage < cut.after.size() ? cut.after[stage] + 1 : op_count;
  return {first, last};
}

} // namespace troupe::planner
