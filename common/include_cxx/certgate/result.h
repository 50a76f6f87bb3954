// Results as values: the core never throws across its API.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace certgate {

// Success, or an error message that names what was wrong (key, value, file:line).
class [[nodiscard]] Status {
 public:
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string &message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }

 private:
  Status() = default;
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

// A value or the error that prevented it.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)), status_(Status::Ok()) {}  // NOLINT: implicit
  Result(Status error) : status_(std::move(error)) {}                   // NOLINT: implicit

  bool ok() const { return value_.has_value(); }
  const Status &status() const { return status_; }
  const T &value() const & { return *value_; }
  T &value() & { return *value_; }
  T &&value() && { return std::move(*value_); }
  const T *operator->() const { return &*value_; }
  T *operator->() { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace certgate
