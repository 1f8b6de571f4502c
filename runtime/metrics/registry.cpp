// registry: metric storage and Prometheus text exposition rendering.
#include "runtime/metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace troupe::metrics {
namespace {

bool valid_metric_name(std::string_view s) {
  if (s.empty())
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

bool valid_label_name(std::string_view s) {
  return valid_metric_name(s) && s.find(':') == std::string_view::npos && s.substr(0, 2) != "__";
}

void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quote && c == '"')
      out += "\\\"";
    else
      out += c;
  }
}

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view le = {}) {
  if (names.empty() && le.empty())
    return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i)
      out += ',';
    out += names[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (!le.empty()) {
    if (!names.empty())
      out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

} // namespace

std::string format_value(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void histogram::observe(double v) {
  // Prometheus buckets are "less than or equal": the first bound >= v.
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  // A scrape racing with observe() may see a bucket before the count; the +Inf bucket and
  // _count must agree, so both come from the same sum of buckets.
  s.count = running;
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, size_t count) {
  std::vector<double> b;
  double v = start;
  for (size_t i = 0; i < count; ++i, v *= factor)
    b.push_back(v);
  return b;
}

template <class T> T& family<T>::with(std::initializer_list<std::string_view> values) {
  return child(std::vector<std::string>(values.begin(), values.end()));
}

template <class T> T& family<T>::with(const std::vector<std::string>& values) {
  return child(values);
}

template <class T> T& family<T>::child(std::vector<std::string> values) {
  if (values.size() != labels_.size())
    throw std::invalid_argument("metric " + name_ + ": " + std::to_string(labels_.size()) +
                                " label values expected, got " + std::to_string(values.size()));
  std::lock_guard lock(mutex_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    std::unique_ptr<T> made;
    if constexpr (std::is_same_v<T, histogram>)
      made = std::make_unique<T>(bounds_);
    else
      made = std::make_unique<T>();
    it = children_.emplace(std::move(values), std::move(made)).first;
  }
  return *it->second;
}

template <class T> void family<T>::render(std::string& out, std::string_view type) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_escaped(out, help_, false);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type;
  out += '\n';
  std::lock_guard lock(mutex_);
  for (const auto& [values, metric] : children_) {
    if constexpr (std::is_same_v<T, histogram>) {
      const auto snap = metric->read();
      for (size_t i = 0; i < snap.cumulative.size(); ++i) {
        out += name_;
        out += "_bucket";
        const std::string le = i < bounds_.size() ? format_value(bounds_[i]) : "+Inf";
        append_labels(out, labels_, values, le);
        out += ' ';
        out += std::to_string(snap.cumulative[i]);
        out += '\n';
      }
      out += name_;
      out += "_sum";
      append_labels(out, labels_, values);
      out += ' ';
      out += format_value(snap.sum);
      out += '\n';
      out += name_;
      out += "_count";
      append_labels(out, labels_, values);
      out += ' ';
      out += std::to_string(snap.count);
      out += '\n';
    } else {
      out += name_;
      append_labels(out, labels_, values);
      out += ' ';
      out += format_value(metric->value());
      out += '\n';
    }
  }
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

status registry::check_new(const std::string& name, const std::vector<std::string>& labels,
                           metric_type type, entry*& existing) {
  existing = nullptr;
  if (!valid_metric_name(name))
    return make_error(errc::invalid_argument, "metric name '{}' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                      name);
  for (const auto& l : labels) {
    if (!valid_label_name(l))
      return make_error(errc::invalid_argument, "metric {}: bad label name '{}'", name, l);
    if (type == metric_type::histogram && l == "le")
      return make_error(errc::invalid_argument, "metric {}: 'le' is reserved for histograms", name);
  }
  for (auto& e : families_) {
    const std::string& other = e.counters ? e.counters->name_
                               : e.gauges ? e.gauges->name_
                                          : e.histograms->name_;
    const auto& other_labels = e.counters ? e.counters->labels_
                               : e.gauges ? e.gauges->labels_
                                          : e.histograms->labels_;
    if (other != name)
      continue;
    if (e.type != type || other_labels != labels)
      return make_error(errc::invalid_argument,
                        "metric {} is already registered with another type or labels", name);
    existing = &e;
  }
  return {};
}

expected<counter_family*> registry::add_counter(std::string name, std::string help,
                                                std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  entry* existing;
  TROUPE_TRY_STATUS(check_new(name, labels, metric_type::counter, existing));
  if (existing)
    return existing->counters.get();
  entry e{metric_type::counter, {}, {}, {}};
  e.counters.reset(new counter_family(std::move(name), std::move(help), std::move(labels), {}));
  families_.push_back(std::move(e));
  return families_.back().counters.get();
}

expected<gauge_family*> registry::add_gauge(std::string name, std::string help,
                                            std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  entry* existing;
  TROUPE_TRY_STATUS(check_new(name, labels, metric_type::gauge, existing));
  if (existing)
    return existing->gauges.get();
  entry e{metric_type::gauge, {}, {}, {}};
  e.gauges.reset(new gauge_family(std::move(name), std::move(help), std::move(labels), {}));
  families_.push_back(std::move(e));
  return families_.back().gauges.get();
}

expected<histogram_family*> registry::add_histogram(std::string name, std::string help,
                                                    std::vector<std::string> labels,
                                                    std::vector<double> upper_bounds) {
  if (upper_bounds.empty() || !std::is_sorted(upper_bounds.begin(), upper_bounds.end()) ||
      std::adjacent_find(upper_bounds.begin(), upper_bounds.end()) != upper_bounds.end() ||
      std::any_of(upper_bounds.begin(), upper_bounds.end(),
                  [](double b) { return !std::isfinite(b); }))
    return make_error(errc::invalid_argument,
                      "histogram {}: bucket bounds must be finite, increasing and non-empty", name);
  std::lock_guard lock(mutex_);
  entry* existing;
  TROUPE_TRY_STATUS(check_new(name, labels, metric_type::histogram, existing));
  if (existing) {
    if (existing->histograms->bounds_ != upper_bounds)
      return make_error(errc::invalid_argument,
                        "histogram {} is already registered with other buckets", name);
    return existing->histograms.get();
  }
  entry e{metric_type::histogram, {}, {}, {}};
  e.histograms.reset(new histogram_family(std::move(name), std::move(help), std::move(labels),
                                          std::move(upper_bounds)));
  families_.push_back(std::move(e));
  return families_.back().histograms.get();
}

std::string registry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& e : families_) {
    switch (e.type) {
      case metric_type::counter:
        e.counters->render(out, "counter");
        break;
      case metric_type::gauge:
        e.gauges->render(out, "gauge");
        break;
      case metric_type::histogram:
        e.histograms->render(out, "histogram");
        break;
    }
  }
  return out;
}

} // namespace troupe::metrics
