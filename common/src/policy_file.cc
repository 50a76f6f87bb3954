// Policy::LoadFile: the CLI's policy files, `key value...;` statements with the
// same tokenizing rules as nginx.conf so a directive can be pasted either way.
#include <certgate/cert_file.h>
#include <certgate/certgate.h>
#include <certgate/policy.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace certgate {
namespace {

struct Token {
  std::string text;
  int line;
};

struct Statement {
  std::vector<Token> tokens;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

class Tokenizer {
 public:
  Tokenizer(const std::string &path, const std::string &text) : path_(path), text_(text) {}

  // Splits the whole text into statements, or names the line of the first error.
  Status Run(std::vector<Statement> *out) {
    Statement current;
    while (true) {
      SkipSpaceAndComments();
      if (pos_ >= text_.size()) break;
      if (text_[pos_] == ';') {
        if (current.tokens.empty()) return Error(line_, "unexpected \";\"");
        out->push_back(std::move(current));
        current = Statement();
        ++pos_;
        continue;
      }
      Token token;
      Status status = ReadToken(&token);
      if (!status.ok()) return status;
      current.tokens.push_back(std::move(token));
    }
    if (!current.tokens.empty()) {
      return Error(current.tokens.back().line, "missing \";\" at end of file");
    }
    return Status::Ok();
  }

 private:
  Status Error(int line, const std::string &text) const {
    return Status::Error(path_ + ":" + std::to_string(line) + ": " + text);
  }

  void SkipSpaceAndComments() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '\n') {
        ++line_;
        ++pos_;
      } else if (IsSpace(c)) {
        ++pos_;
      } else if (c == '#') {  // only at a token's start: "a#b" stays one token
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        return;
      }
    }
  }

  // One token: bare characters and quoted parts, up to whitespace or ';'.
  Status ReadToken(Token *token) {
    token->line = line_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (IsSpace(c) || c == ';') break;
      if (c == '"' || c == '\'') {
        Status status = ReadQuoted(c, &token->text);
        if (!status.ok()) return status;
        continue;
      }
      if (c == '\\' && pos_ + 1 < text_.size()) {
        char next = text_[pos_ + 1];
        // Escapes only what would otherwise end or split the token, like nginx;
        // other backslashes stay for the regex.
        if (IsSpace(next) || next == ';' || next == '#' || next == '"' || next == '\'' ||
            next == '\\') {
          if (next == '\n') ++line_;
          token->text += next;
          pos_ += 2;
          continue;
        }
      }
      token->text += c;
      ++pos_;
    }
    return Status::Ok();
  }

  Status ReadQuoted(char quote, std::string *out) {
    int start_line = line_;
    ++pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == quote) {
        ++pos_;
        return Status::Ok();
      }
      if (c == '\n') ++line_;
      if (c == '\\' && pos_ + 1 < text_.size()) {
        char next = text_[pos_ + 1];
        pos_ += 2;
        switch (next) {
          case '"':
          case '\'':
          case '\\':
            *out += next;
            break;
          case 'n':
            *out += '\n';
            break;
          case 't':
            *out += '\t';
            break;
          case 'r':
            *out += '\r';
            break;
          default:  // "\." and "\d" reach the regex unchanged
            if (next == '\n') ++line_;
            *out += '\\';
            *out += next;
            break;
        }
        continue;
      }
      *out += c;
      ++pos_;
    }
    return Error(start_line, "unterminated quoted string");
  }

  const std::string &path_;
  const std::string &text_;
  size_t pos_ = 0;
  int line_ = 1;
};

// Files named in a policy file are found next to it, wherever the CLI runs from.
void ResolveRelativePaths(const std::string &policy_path, const std::string &key,
                          std::vector<std::string> *args) {
  // Files read (CG_KEY_PATH_CONF); certgate_cache must stay absolute here.
  if (KeyPathKind(key) != CG_KEY_PATH_CONF) return;
  size_t slash = policy_path.rfind('/');
  if (slash == std::string::npos) return;  // the file is in the working directory
  std::string dir = policy_path.substr(0, slash + 1);
  for (std::string &arg : *args) {
    if (!arg.empty() && arg[0] != '/') arg = dir + arg;
  }
}

}  // namespace

Status Policy::LoadFile(const std::string &path) {
  std::string text;
  Status read = ReadWholeFile(path, &text);
  if (!read.ok()) return read;

  std::vector<Statement> statements;
  Status tokenized = Tokenizer(path, text).Run(&statements);
  if (!tokenized.ok()) return tokenized;

  // Apply to a copy so a bad file leaves this policy as it was.
  Policy updated = *this;
  for (const Statement &statement : statements) {
    const Token &key = statement.tokens.front();
    std::vector<std::string> args;
    for (size_t i = 1; i < statement.tokens.size(); ++i) args.push_back(statement.tokens[i].text);
    ResolveRelativePaths(path, CanonicalKey(key.text), &args);
    Status status = updated.Set(key.text, args);
    if (!status.ok()) {
      return Status::Error(path + ":" + std::to_string(key.line) + ": " + status.message());
    }
  }
  if (Status combined = updated.CheckCombination(); !combined.ok()) {
    return Status::Error(path + ": " + combined.message());
  }
  *this = std::move(updated);
  return Status::Ok();
}

}  // namespace certgate
