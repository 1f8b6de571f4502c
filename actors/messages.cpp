// messages: troupe's CAF error category and type registration.
#include "actors/messages.hpp"

#include <caf/atom.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace troupe {

caf::atom_value error_category() { return caf::atom("troupe"); }

caf::error to_error(errc code, std::string message) {
  return caf::error{static_cast<uint8_t>(code), error_category(),
                    caf::make_message(std::move(message))};
}

caf::error to_error(const status& st) { return to_error(st.code(), st.message()); }

std::optional<errc> errc_of(const caf::error& err) {
  if (!err)
    return std::nullopt;
  if (err.category() == error_category())
    return static_cast<errc>(err.code());
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_receiver_down:
      case caf::sec::request_timeout:
        return errc::unavailable;
      default:
        break;
    }
  }
  return errc::internal;
}

std::string message_of(const caf::error& err) {
  if (err.category() == error_category() && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_receiver_down:
        return "the model stopped before answering";
      case caf::sec::request_timeout:
        return "the model did not answer in time";
      default:
        break;
    }
  }
  return caf::to_string(err);
}

void add_troupe_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::troupe>();
  cfg.add_error_category(error_category(),
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           std::string out = "troupe: ";
                           out += to_string(static_cast<errc>(code));
                           // The context is the message to_error stored: one string.
                           if (ctx.match_elements<std::string>()) {
                             out += ": ";
                             out += ctx.get_as<std::string>(0);
                           }
                           return out;
                         });
}

} // namespace troupe
