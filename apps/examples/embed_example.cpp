// embed_example: a CAF program that starts troupe in its own actor_system and asks a model.
//
//   embed_example REPO MODEL   (REPO/<MODEL>/config.yaml, REPO/<MODEL>/1/model.onnx)
#include <iostream>

#include <caf/all.hpp>

#include "actors/embedded_runtime.hpp"

namespace {

/// One of the program's own actors: sends a request to the model handle and prints the answer.
caf::behavior client(caf::event_based_actor* self, troupe::model_handle model) {
  troupe::infer_request req;
  for (const auto& in : model.inputs) {
    troupe::shape dims = in.dims;
    for (auto& d : dims)
      if (d < 0)
        d = 1; // one row, and 1 for any other dynamic dim
    req.inputs.push_back(troupe::tensor::zeros(in.type, dims));
  }
  req.correlation_id = 1;
  self->request(model.batcher, std::chrono::seconds(10), troupe::atom::infer_v, std::move(req))
      .then(
          [=](troupe::infer_response& r) {
            std::cout << "reply " << r.correlation_id << ": output 0 has shape "
                      << troupe::to_string(r.outputs.at(0).dims()) << "\n";
          },
          [=](caf::error& e) { std::cout << "error: " << self->system().render(e) << "\n"; });
  return {};
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: embed_example REPO MODEL\n";
    return 2;
  }
  caf::actor_system_config cfg;
  troupe::add_troupe_types(cfg); // type IDs and the error category, before the system exists
  caf::actor_system sys{cfg};
  {
    auto rt = troupe::embedded_runtime::start(sys);
    if (!rt) {
      std::cerr << sys.render(rt.error()) << "\n";
      return 1;
    }
    if (auto loaded = (*rt)->load_repository(argv[1]); !loaded) {
      std::cerr << sys.render(loaded.error()) << "\n";
      return 1;
    }
    auto model = (*rt)->model(argv[2]);
    if (!model) {
      std::cerr << "no model " << argv[2] << "\n";
      return 1;
    }
    sys.spawn(client, *model);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (auto s = (*rt)->status(*model))
      std::cout << "completed " << s->completed << ", failed " << s->failed << "\n";
  } // the runtime shuts down here: troupe's actors stop before the actor_system does
  return 0;
}
