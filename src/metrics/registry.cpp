#include "metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace danemta::metrics {

struct Registry::Family {
  std::string name;
  Type type = Type::counter;
  std::string help;
  std::vector<double> bounds;  // histogram upper bounds, increasing, without +Inf

  struct Series {
    double value = 0;                    // counter, gauge; a histogram's sum
    std::vector<std::uint64_t> buckets;  // histogram: per bound (not cumulative), then +Inf
    std::uint64_t count = 0;             // histogram
  };
  std::map<Labels, Series> series;

  Series& at(const Labels& labels) {
    for (const auto& [label, value] : labels) {
      if (!valid_label_name(label) || (type == Type::histogram && label == "le"))
        throw std::logic_error("metric " + name + ": bad label name \"" + label + "\"");
    }
    auto [it, added] = series.try_emplace(labels);
    if (added && type == Type::histogram) it->second.buckets.assign(bounds.size() + 1, 0);
    return it->second;
  }
};

namespace {

std::string_view type_name(Type t) {
  switch (t) {
    case Type::counter:
      return "counter";
    case Type::gauge:
      return "gauge";
    case Type::histogram:
      return "histogram";
  }
  return "untyped";
}

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

// `{a="x",b="y"}` for labels plus an optional last one; "" when there is none.
std::string label_text(const Labels& labels, std::string_view extra_name = {},
                       std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  auto one = [&](std::string_view n, std::string_view v) {
    if (!first) out += ',';
    first = false;
    out.append(n);
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  };
  for (const auto& [n, v] : labels) one(n, v);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out += '}';
  return out;
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty() || !(name_start(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return name_char(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !name_start(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), name_char);
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::declare(const std::string& name, Type type, const std::string& help,
                       std::vector<double> buckets) {
  std::lock_guard lock(mutex_);
  if (!valid_metric_name(name)) throw std::logic_error("bad metric name \"" + name + "\"");
  if (find(name) != nullptr) throw std::logic_error("metric " + name + " declared twice");
  if (type != Type::histogram && !buckets.empty())
    throw std::logic_error("metric " + name + ": buckets for a " + std::string(type_name(type)));
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
      throw std::logic_error("metric " + name + ": bucket bounds must be finite and increasing");
  }
  auto f = std::make_unique<Family>();
  f->name = name;
  f->type = type;
  f->help = help;
  f->bounds = std::move(buckets);
  families_.push_back(std::move(f));
}

const Registry::Family* Registry::find(std::string_view name) const {
  for (const auto& f : families_)
    if (f->name == name) return f.get();
  return nullptr;
}

Registry::Family& Registry::family(std::string_view name, Type type) {
  auto* f = const_cast<Family*>(find(name));
  if (f == nullptr) throw std::logic_error("metric " + std::string(name) + " was not declared");
  if (f->type != type)
    throw std::logic_error("metric " + std::string(name) + " is a " +
                           std::string(type_name(f->type)) + ", not a " +
                           std::string(type_name(type)));
  return *f;
}

void Registry::add(std::string_view name, const Labels& labels, double amount) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, Type::counter);
  if (!(amount >= 0)) throw std::logic_error("counter " + f.name + " can only go up");
  f.at(labels).value += amount;
}

void Registry::set(std::string_view name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  family(name, Type::gauge).at(labels).value = value;
}

void Registry::observe(std::string_view name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, Type::histogram);
  Family::Series& s = f.at(labels);
  if (std::isnan(value)) return;  // in no bucket: not counted
  // The first bucket whose upper bound is >= value ("le": less or equal).
  const auto at = std::lower_bound(f.bounds.begin(), f.bounds.end(), value);
  ++s.buckets[static_cast<std::size_t>(at - f.bounds.begin())];
  ++s.count;
  s.value += value;
}

void Registry::clear(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto* f = const_cast<Family*>(find(name));
  if (f == nullptr) throw std::logic_error("metric " + std::string(name) + " was not declared");
  f->series.clear();
}

std::optional<double> Registry::value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mutex_);
  const Family* f = find(name);
  if (f == nullptr) return std::nullopt;
  auto it = f->series.find(labels);
  if (it == f->series.end()) return std::nullopt;
  if (f->type == Type::histogram) return static_cast<double>(it->second.count);
  return it->second.value;
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP " + f->name + " " + escape_help(f->help) + "\n";
    out += "# TYPE " + f->name + " " + std::string(type_name(f->type)) + "\n";
    for (const auto& [labels, s] : f->series) {
      if (f->type != Type::histogram) {
        out += f->name + label_text(labels) + " " + format_value(s.value) + "\n";
        continue;
      }
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= f->bounds.size(); ++i) {
        cumulative += s.buckets[i];
        const std::string le = i < f->bounds.size() ? format_value(f->bounds[i]) : "+Inf";
        out += f->name + "_bucket" + label_text(labels, "le", le) + " " +
               std::to_string(cumulative) + "\n";
      }
      out += f->name + "_sum" + label_text(labels) + " " + format_value(s.value) + "\n";
      out += f->name + "_count" + label_text(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace danemta::metrics
