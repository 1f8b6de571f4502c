// merger: splits a finished batch into per-request replies (views into the batch outputs).
#include "actors/actors.hpp"

namespace troupe {

namespace {

merger_actor::behavior_type merger(merger_actor::pointer) {
  return {
    [](atom::merge, batch_job& job) -> batch_done {
      batch_done done{job.batch_id, job.replica, {}, {}, std::move(job.stage_us)};
      done.replies.resize(job.rows.size());
      if (!job.batched) {
        // No batch dimension: the batch was one request and the outputs are its own.
        if (!done.replies.empty())
          done.replies[0].outputs = std::move(job.values);
        return done;
      }
      int64_t total = 0;
      for (int64_t r : job.rows)
        total += r;
      for (const auto& out : job.values)
        if (out.rank() < 1 || out.dim(0) < total) {
          done.error = to_error(make_error(
              errc::internal, "batch {}: output of shape {} has fewer than the batch's {} rows",
              job.batch_id, to_string(out.dims()), total));
          done.replies.clear();
          return done;
        }
      int64_t begin = 0;
      for (size_t i = 0; i < job.rows.size(); ++i) {
        auto& outputs = done.replies[i].outputs;
        outputs.reserve(job.values.size());
        for (const auto& out : job.values)
          outputs.push_back(out.slice_rows(begin, begin + job.rows[i]));
        begin += job.rows[i];
      }
      return done;
    },
  };
}

} // namespace

merger_actor spawn_merger(caf::actor_system& sys) { return sys.spawn(merger); }

} // namespace troupe
