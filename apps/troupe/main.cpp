// main: the troupe command line (serve, run, bench, ops, plan, load, devices).
#include "apps/openmp_wait_policy.hpp"
#include "apps/troupe/commands.hpp"

int main(int argc, char** argv) {
  troupe::app::use_passive_openmp_wait(argv);
  CLI::App app{"troupe: an actor-based runtime for serving deep-learning models"};
  app.require_subcommand(1);
  troupe::app::add_run_command(app);
  troupe::app::add_bench_command(app);
  troupe::app::add_ops_command(app);
  troupe::app::add_plan_command(app);
  troupe::app::add_load_command(app);
  troupe::app::add_serve_command(app);
  troupe::app::add_devices_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
