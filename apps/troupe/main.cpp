// main: the troupe command line (run, bench, ops, load; serving commands come with the pipeline).
#include "apps/troupe/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"troupe: an actor-based runtime for serving deep-learning models"};
  app.require_subcommand(1);
  troupe::app::add_run_command(app);
  troupe::app::add_bench_command(app);
  troupe::app::add_ops_command(app);
  troupe::app::add_load_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
