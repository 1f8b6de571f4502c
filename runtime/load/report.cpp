// report: writers for a load run's results (JSON, per-second CSV, self-contained HTML with
// inline SVG charts) and the text lines the CLI prints.
#include "runtime/load/report.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace troupe::load {

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON has no NaN or infinity; anything non-finite is written as null.
std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null"; }

latency_histogram overall_latency(const run_result& r) {
  latency_histogram h;
  for (const auto& p : r.phases)
    h.merge(p.latency);
  return h;
}

} // namespace

std::string to_json(const run_result& r) {
  std::string o = "{";
  o += fmt::format("\"scenario\":{},\"transport\":{},\"target\":{},\"duration_s\":{},"
                   "\"unanswered\":{},\"phases\":[",
                   json_string(r.scenario), json_string(r.transport), json_string(r.target),
                   num(r.duration_s), r.unanswered);
  for (size_t i = 0; i < r.phases.size(); ++i) {
    const auto& p = r.phases[i];
    o += i ? "," : "";
    o += fmt::format("{{\"name\":{},\"arrival\":{},\"start_s\":{},\"end_s\":{},\"last_reply_s\":{},"
                     "\"slo_ms\":{},\"sent\":{},\"ok\":{},\"errors\":{{",
                     json_string(p.name), json_string(p.arrival), num(p.start_s), num(p.end_s),
                     num(p.last_reply_s), num(p.slo_ms), p.sent, p.ok);
    bool first = true;
    for (const auto& [label, count] : p.errors) {
      o += fmt::format("{}{}:{}", first ? "" : ",", json_string(label), count);
      first = false;
    }
    o += fmt::format("}},\"error_count\":{},\"offered_rate\":{},\"throughput\":{},\"goodput\":{},"
                     "\"within_slo\":{},\"latency_ms\":{{\"p50\":{},\"p90\":{},\"p99\":{},"
                     "\"p999\":{},\"max\":{},\"mean\":{}}},\"accuracy\":{},\"labelled\":{},"
                     "\"correct\":{},\"lag_max_ms\":{},\"late_sends\":{},\"histogram\":[",
                     p.error_count(), num(p.offered_rate()), num(p.throughput()),
                     num(p.goodput()), p.within_slo, num(p.percentile_ms(0.5)),
                     num(p.percentile_ms(0.9)), num(p.percentile_ms(0.99)),
                     num(p.percentile_ms(0.999)), num(p.latency.max() / 1000.0),
                     num(p.latency.mean() / 1000.0),
                     p.accuracy() ? num(*p.accuracy()) : "null", p.labelled, p.correct,
                     num(p.lag_max_ms), p.late_sends);
    const auto buckets = p.latency.buckets();
    for (size_t b = 0; b < buckets.size(); ++b)
      o += fmt::format("{}[{},{},{}]", b ? "," : "", buckets[b].lower_us, buckets[b].upper_us,
                       buckets[b].count);
    o += "]}";
  }
  o += "],\"series\":[";
  for (size_t i = 0; i < r.series.size(); ++i) {
    const auto& s = r.series[i];
    o += fmt::format("{}{{\"second\":{},\"phase\":{},\"sent\":{},\"ok\":{},\"errors\":{},"
                     "\"p50_ms\":{},\"p99_ms\":{},\"lag_max_ms\":{}}}",
                     i ? "," : "", s.second, s.phase, s.sent, s.ok, s.errors, num(s.p50_ms),
                     num(s.p99_ms), num(s.lag_max_ms));
  }
  return o + "]}\n";
}

std::string to_csv(const run_result& r) {
  std::string o = "second,phase,sent,ok,errors,p50_ms,p99_ms,lag_max_ms\n";
  for (const auto& s : r.series) {
    std::string phase = s.phase < r.phases.size() ? r.phases[s.phase].name : "";
    // Phase names are the user's; quote them so a comma cannot shift the columns.
    std::string quoted = "\"";
    for (char c : phase)
      quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    o += fmt::format("{},{},{},{},{},{:.3f},{:.3f},{:.3f}\n", s.second, quoted, s.sent, s.ok,
                     s.errors, s.p50_ms, s.p99_ms, s.lag_max_ms);
  }
  return o;
}

namespace {

struct series_def {
  std::string label;
  std::string color;
  std::vector<double> y;
};

constexpr double chart_w = 900, chart_h = 260, pad_l = 60, pad_r = 20, pad_t = 30, pad_b = 40;

double nice_ceiling(double v) {
  if (v <= 0)
    return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= v)
      return m * p;
  return 10 * p;
}

/// A line chart over the run's seconds: one <polyline> per series, one dashed line per phase
/// boundary, optional horizontal reference line (the SLO).
std::string line_chart(const std::string& id, const std::string& title, const std::string& unit,
                       const run_result& r, const std::vector<series_def>& series,
                       std::optional<double> reference = std::nullopt,
                       const std::string& reference_label = "") {
  const double x_max = std::max(1.0, std::ceil(r.duration_s));
  double y_max = reference.value_or(0);
  for (const auto& s : series)
    for (double v : s.y)
      if (std::isfinite(v))
        y_max = std::max(y_max, v);
  y_max = nice_ceiling(y_max * 1.05);
  const double pw = chart_w - pad_l - pad_r, ph = chart_h - pad_t - pad_b;
  auto sx = [&](double x) { return pad_l + pw * x / x_max; };
  auto sy = [&](double y) { return pad_t + ph * (1 - y / y_max); };

  std::string o = fmt::format(
      "<figure><svg id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\"><title>{}</title>\n",
      id, chart_w, chart_h, chart_w, chart_h, html_escape(title));
  o += fmt::format("<text x=\"{}\" y=\"18\" class=\"title\">{}</text>\n", pad_l,
                   html_escape(title));
  // Grid and axis labels.
  for (int i = 0; i <= 4; ++i) {
    const double v = y_max * i / 4;
    o += fmt::format("<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
                     "<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n",
                     pad_l, chart_w - pad_r, sy(v), sy(v), pad_l - 6, sy(v) + 4, v);
  }
  const int xticks = 6;
  for (int i = 0; i <= xticks; ++i) {
    const double v = x_max * i / xticks;
    o += fmt::format("<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.0f}s</text>\n",
                     sx(v), chart_h - pad_b + 16, v);
  }
  o += fmt::format("<text class=\"axis\" x=\"12\" y=\"{:.1f}\" transform=\"rotate(-90 12 {:.1f})\" "
                   "text-anchor=\"middle\">{}</text>\n",
                   pad_t + ph / 2, pad_t + ph / 2, html_escape(unit));
  // Phase boundaries, labelled with the phase that starts there.
  for (size_t i = 0; i < r.phases.size(); ++i) {
    const double x = sx(r.phases[i].start_s);
    o += fmt::format("<line class=\"phase-boundary\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" "
                     "y2=\"{:.1f}\"/><text class=\"phase-label\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
                     x, x, pad_t, chart_h - pad_b, x + 3, pad_t + 10,
                     html_escape(r.phases[i].name));
  }
  if (reference)
    o += fmt::format("<line class=\"reference\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" "
                     "y2=\"{:.1f}\"/><text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" "
                     "text-anchor=\"end\">{}</text>\n",
                     pad_l, chart_w - pad_r, sy(*reference), sy(*reference), chart_w - pad_r,
                     sy(*reference) - 4, html_escape(reference_label));
  // Each point sits in the middle of its second.
  double legend_x = pad_l + 200;
  for (const auto& s : series) {
    std::string points;
    for (size_t i = 0; i < s.y.size() && i < r.series.size(); ++i)
      if (std::isfinite(s.y[i]))
        points += fmt::format("{:.1f},{:.1f} ", sx(r.series[i].second + 0.5), sy(s.y[i]));
    o += fmt::format("<polyline class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{}\" "
                     "stroke-width=\"1.8\" points=\"{}\"/>\n",
                     html_escape(s.label), s.color, points);
    o += fmt::format("<rect x=\"{:.1f}\" y=\"9\" width=\"12\" height=\"4\" fill=\"{}\"/>"
                     "<text class=\"axis\" x=\"{:.1f}\" y=\"15\">{}</text>\n",
                     legend_x, s.color, legend_x + 16, html_escape(s.label));
    legend_x += 110;
  }
  return o + "</svg></figure>\n";
}

/// Latency histogram on a log time axis: the HDR buckets regrouped into a few dozen bars.
std::string histogram_chart(const latency_histogram& h, double slo_ms) {
  const double pw = chart_w - pad_l - pad_r, ph = chart_h - pad_t - pad_b;
  std::string o = fmt::format(
      "<figure><svg id=\"latency-histogram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
      "height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\"><title>Latency histogram</title>\n"
      "<text x=\"{}\" y=\"18\" class=\"title\">Latency histogram (all phases, ok replies)</text>\n",
      chart_w, chart_h, chart_w, chart_h, pad_l);
  if (h.count() == 0)
    return o + "<text class=\"axis\" x=\"300\" y=\"130\">no successful replies</text></svg></figure>\n";
  const double lo = std::log10(std::max<int64_t>(h.min(), 1)) - 0.05;
  const double hi = std::log10(std::max<int64_t>(h.max(), 2)) + 0.05;
  constexpr int bins = 60;
  std::vector<uint64_t> counts(bins, 0);
  for (const auto& b : h.buckets()) {
    const double mid = std::log10(std::max(1.0, (b.lower_us + b.upper_us) / 2.0));
    const int i = std::clamp(static_cast<int>((mid - lo) / (hi - lo) * bins), 0, bins - 1);
    counts[static_cast<size_t>(i)] += b.count;
  }
  const double top = static_cast<double>(*std::max_element(counts.begin(), counts.end()));
  auto sx = [&](double log_us) { return pad_l + pw * (log_us - lo) / (hi - lo); };
  for (int i = 0; i < bins; ++i) {
    if (!counts[static_cast<size_t>(i)])
      continue;
    const double x0 = sx(lo + (hi - lo) * i / bins), x1 = sx(lo + (hi - lo) * (i + 1) / bins);
    const double bh = ph * static_cast<double>(counts[static_cast<size_t>(i)]) / top;
    o += fmt::format("<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\">"
                     "<title>{}</title></rect>\n",
                     x0, pad_t + ph - bh, std::max(1.0, x1 - x0 - 1), bh,
                     counts[static_cast<size_t>(i)]);
  }
  for (double decade = std::ceil(lo); decade <= hi; decade += 1) {
    const double us = std::pow(10.0, decade);
    const std::string label = us >= 1e6   ? fmt::format("{:g} s", us / 1e6)
                              : us >= 1e3 ? fmt::format("{:g} ms", us / 1e3)
                                          : fmt::format("{:g} µs", us);
    o += fmt::format("<line class=\"grid\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\"/>"
                     "<text class=\"axis\" x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
                     sx(decade), pad_t, pad_t + ph, chart_h - pad_b + 16, label);
  }
  if (slo_ms > 0) {
    const double x = sx(std::log10(slo_ms * 1e3));
    if (x >= pad_l && x <= chart_w - pad_r)
      o += fmt::format("<line class=\"reference\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" "
                       "y2=\"{2:.1f}\"/><text class=\"axis\" x=\"{3:.1f}\" y=\"{4:.1f}\">SLO</text>\n",
                       x, pad_t, pad_t + ph, x + 3, pad_t + 12);
  }
  return o + "</svg></figure>\n";
}

} // namespace

std::string to_html(const run_result& r) {
  std::vector<double> sent, ok, errors, p50, p99;
  for (const auto& s : r.series) {
    sent.push_back(static_cast<double>(s.sent));
    ok.push_back(static_cast<double>(s.ok));
    errors.push_back(static_cast<double>(s.errors));
    // A second without successful replies has no latency; leave a gap instead of a 0.
    p50.push_back(s.ok ? s.p50_ms : NAN);
    p99.push_back(s.ok ? s.p99_ms : NAN);
  }
  double slo = 0;
  for (const auto& p : r.phases)
    slo = std::max(slo, p.slo_ms);

  std::string o = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<title>troupe load: {}</title>\n<style>\n"
      "body{{font-family:sans-serif;margin:2em;color:#222;max-width:960px}}\n"
      "table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;"
      "text-align:right}}th{{background:#f3f3f3}}td:first-child{{text-align:left}}\n"
      "svg .grid{{stroke:#e4e4e4}}svg .axis{{font-size:11px;fill:#555}}svg .title{{font-size:13px;"
      "font-weight:bold}}svg .phase-boundary{{stroke:#888;stroke-dasharray:4 3}}"
      "svg .phase-label{{font-size:10px;fill:#666}}svg .reference{{stroke:#c00;stroke-dasharray:2 2}}"
      "svg .bar{{fill:#4a7fc1}}figure{{margin:1em 0}}\n</style></head><body>\n"
      "<h1>troupe load: {}</h1>\n<p>transport {}, target {}, {:.1f} s{}</p>\n",
      html_escape(r.scenario), html_escape(r.scenario), html_escape(r.transport),
      html_escape(r.target), r.duration_s,
      r.unanswered ? fmt::format(", {} requests unanswered at the end", r.unanswered) : "");
  o += "<table><tr><th>phase</th><th>arrival</th><th>sent</th><th>ok</th><th>errors</th>"
       "<th>req/s</th><th>goodput/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>"
       "<th>p99.9 ms</th><th>max ms</th><th>accuracy</th><th>max lag ms</th></tr>\n";
  for (const auto& p : r.phases) {
    std::string errs = std::to_string(p.error_count());
    for (const auto& [label, count] : p.errors)
      errs += fmt::format("<br>{} {}", html_escape(label), count);
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td>"
                     "<td>{:.1f}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.2f}</td>"
                     "<td>{:.2f}</td><td>{}</td><td>{:.2f}</td></tr>\n",
                     html_escape(p.name), html_escape(p.arrival), p.sent, p.ok, errs,
                     p.throughput(), p.goodput(), p.percentile_ms(0.5), p.percentile_ms(0.9),
                     p.percentile_ms(0.99), p.percentile_ms(0.999), p.latency.max() / 1000.0,
                     p.accuracy() ? fmt::format("{:.2f} %", *p.accuracy() * 100) : "",
                     p.lag_max_ms);
  }
  o += "</table>\n";
  o += line_chart("throughput", "Throughput", "requests / s", r,
                  {{"sent/s", "#888888", sent}, {"ok/s", "#2a9d3a", ok}});
  o += line_chart("latency", "Latency percentiles (from scheduled send)", "ms", r,
                  {{"p50", "#4a7fc1", p50}, {"p99", "#d9822b", p99}},
                  slo > 0 ? std::optional<double>(slo) : std::nullopt, "SLO");
  o += line_chart("errors", "Errors", "errors / s", r, {{"errors/s", "#c0392b", errors}});
  o += histogram_chart(overall_latency(r), slo);
  return o + "</body></html>\n";
}

std::string live_line(const second_row& row, const run_result& context) {
  const std::string phase =
      row.phase < context.phases.size() ? context.phases[row.phase].name : "";
  return fmt::format("{:>5}s  {:<12} rate {:>6}/s  ok {:>6}  err {:>5}  p50 {:>8.2f} ms  p99 {:>8.2f} ms{}",
                     row.second, phase, row.sent, row.ok, row.errors, row.p50_ms, row.p99_ms,
                     row.lag_max_ms > 10 ? fmt::format("  (generator {:.0f} ms behind)", row.lag_max_ms)
                                         : "");
}

std::string summary_table(const run_result& r) {
  std::string o = fmt::format("\n{} over {} ({}), {:.1f} s\n", r.scenario, r.target, r.transport,
                              r.duration_s);
  o += fmt::format("{:<14} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}\n",
                   "phase", "sent", "ok", "errors", "req/s", "goodput", "p50 ms", "p90 ms",
                   "p99 ms", "p99.9 ms", "max ms", "accuracy");
  for (const auto& p : r.phases) {
    o += fmt::format("{:<14} {:>8} {:>8} {:>7} {:>9.1f} {:>9.1f} {:>8.2f} {:>8.2f} {:>8.2f} {:>9.2f} "
                     "{:>8.2f} {:>9}\n",
                     p.name, p.sent, p.ok, p.error_count(), p.throughput(), p.goodput(),
                     p.percentile_ms(0.5), p.percentile_ms(0.9), p.percentile_ms(0.99),
                     p.percentile_ms(0.999), p.latency.max() / 1000.0,
                     p.accuracy() ? fmt::format("{:.2f}%", *p.accuracy() * 100) : "-");
    for (const auto& [label, count] : p.errors)
      o += fmt::format("{:<14}   error {}: {}\n", "", label, count);
    o += fmt::format("{:<14}   {}, SLO {:g} ms", "", p.arrival, p.slo_ms);
    if (p.late_sends)
      o += fmt::format(", generator fell behind: {} sends > {:g} ms late, worst {:.1f} ms",
                       p.late_sends, phase_result::late_threshold_ms, p.lag_max_ms);
    o += "\n";
  }
  if (r.unanswered)
    o += fmt::format("{} requests had no reply when the run stopped waiting\n", r.unanswered);
  return o;
}

} // namespace troupe::load
