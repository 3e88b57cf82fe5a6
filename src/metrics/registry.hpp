// The figures danemta exposes for monitoring, and their rendering in the
// Prometheus text exposition format, version 0.0.4 (what a Prometheus server
// scrapes from /metrics; docs/metrics.md lists every family). Pure: no I/O.
//
// A family is declared once (name, type, help text, histogram buckets); its
// series are told apart by label values and created on first use. Counters
// only go up, gauges are set, histograms count observations into cumulative
// buckets. Every method is safe to call from several threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace danemta::metrics {

enum class Type { counter, gauge, histogram };

// Label names and values, in the order the family declares its label names.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Declares a family. `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; a histogram
  // has increasing, finite upper bounds (+Inf is added). Declaring a name
  // twice, or a malformed name, is a programming error (std::logic_error).
  void declare(const std::string& name, Type type, const std::string& help,
               std::vector<double> buckets = {});

  // Using an undeclared name, the wrong type, a malformed label name or a
  // negative counter increment is a programming error (std::logic_error).
  void add(std::string_view name, const Labels& labels, double amount = 1);  // counter
  void set(std::string_view name, const Labels& labels, double value);       // gauge
  void observe(std::string_view name, const Labels& labels, double value);   // histogram
  // Drops every series of a family (a gauge recomputed whole, whose label
  // values come and go: the queue by destination).
  void clear(std::string_view name);

  // A counter's or gauge's value, a histogram's count; nullopt when the
  // series does not exist.
  std::optional<double> value(std::string_view name, const Labels& labels) const;

  // Every family in declaration order, each with "# HELP" and "# TYPE"
  // lines, then its series in label order (histograms: _bucket lines with
  // "le" from the smallest bound to "+Inf", then _sum and _count).
  std::string render() const;

 private:
  struct Family;
  Family& family(std::string_view name, Type type);
  const Family* find(std::string_view name) const;

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
};

// A label value with '\\', '"' and line feeds escaped (format 0.0.4).
std::string escape_label_value(std::string_view value);
// A help text with '\\' and line feeds escaped.
std::string escape_help(std::string_view help);
// A sample value: the shortest text that reads back as the same double;
// "+Inf", "-Inf", "NaN".
std::string format_value(double value);
// Whether `name` is a valid metric name, label name (no colon, not starting
// with "__").
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

}  // namespace danemta::metrics
