#include "chat/jinja_parser.h"

#include <cstdlib>

#include "core/error.h"

namespace ferrum::chat::jinja {
namespace {

// Deeply nested input must not overflow the C++ stack.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Body parse_template() {
    std::string end;
    Body body = parse_body({}, end);
    if (peek().type != TokenType::Eof) error("unexpected token");
    return body;
  }

 private:
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxNesting) p.error("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, t_.size() - 1);
    return t_[i];
  }
  const Token& next() {
    const Token& tok = t_[pos_];
    if (pos_ + 1 < t_.size()) ++pos_;
    return tok;
  }
  [[noreturn]] void error(const std::string& msg) const {
    const Token& tok = peek();
    std::string near = tok.type == TokenType::Eof ? "end of template" : "'" + tok.value + "'";
    if (tok.type == TokenType::BlockEnd) near = "'%}'";
    if (tok.type == TokenType::VarEnd) near = "'}}'";
    fail("template syntax error: {} near {} (line {})", msg, near, tok.line);
  }
  bool is_op(const std::string& op, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::Operator && peek(ahead).value == op;
  }
  bool is_name(const std::string& name, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::Name && peek(ahead).value == name;
  }
  void expect_op(const std::string& op) {
    if (!is_op(op)) error("expected '" + op + "'");
    next();
  }
  std::string expect_name() {
    if (peek().type != TokenType::Name) error("expected a name");
    return next().value;
  }
  void expect_block_end() {
    if (peek().type != TokenType::BlockEnd) error("expected end of statement block");
    next();
  }

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Parses statements until a block tag named in `ends`; that tag's name is consumed and
  // stored in `found` (the rest of the tag is left for the caller).
  Body parse_body(const std::vector<std::string>& ends, std::string& found) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& tok = peek();
      if (tok.type == TokenType::Eof) {
        if (!ends.empty()) error("unexpected end of template, expected '" + ends[0] + "'");
        return body;
      }
      if (tok.type == TokenType::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->line = tok.line;
        s->text = tok.value;
        body.push_back(std::move(s));
        next();
      } else if (tok.type == TokenType::VarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = tok.line;
        s->expr = parse_tuple(true);
        if (peek().type != TokenType::VarEnd) error("expected '}}'");
        next();
        body.push_back(std::move(s));
      } else if (tok.type == TokenType::BlockBegin) {
        const Token& name = peek(1);
        if (name.type == TokenType::Name) {
          for (const auto& e : ends) {
            if (name.value == e) {
              next();
              next();
              found = e;
              return body;
            }
          }
        }
        next();
        body.push_back(parse_statement());
      } else {
        error("unexpected token");
      }
    }
  }

  StmtPtr parse_statement() {
    int line = peek().line;
    std::string tag = expect_name();
    auto s = std::make_unique<Stmt>();
    s->line = line;
    std::string found;
    if (tag == "if") {
      s->kind = Stmt::Kind::If;
      ExprPtr cond = parse_expression(false);
      expect_block_end();
      while (true) {
        Body body = parse_body({"elif", "else", "endif"}, found);
        s->branches.emplace_back(std::move(cond), std::move(body));
        if (found == "elif") {
          cond = parse_expression(false);
          expect_block_end();
        } else if (found == "else") {
          expect_block_end();
          Body else_body = parse_body({"endif"}, found);
          s->branches.emplace_back(nullptr, std::move(else_body));
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (tag == "for") {
      s->kind = Stmt::Kind::For;
      s->loop_vars.push_back(expect_name());
      while (is_op(",")) {
        next();
        s->loop_vars.push_back(expect_name());
      }
      if (!is_name("in")) error("expected 'in'");
      next();
      s->expr = parse_tuple(false);
      if (is_name("if")) {
        next();
        s->filter = parse_expression(true);
      }
      if (is_name("recursive")) error("recursive for loops are not supported");
      expect_block_end();
      s->body = parse_body({"else", "endfor"}, found);
      expect_block_end();
      if (found == "else") {
        s->else_body = parse_body({"endfor"}, found);
        expect_block_end();
      }
    } else if (tag == "set") {
      int tline = peek().line;
      std::string name = expect_name();
      if (is_op("=") || is_op(".") || is_op(",")) {
        s->kind = Stmt::Kind::Set;
        if (is_op(".")) {
          next();
          auto attr = make(Expr::Kind::Attr, tline);
          auto base = make(Expr::Kind::Name, tline);
          base->name = name;
          attr->args.push_back(std::move(base));
          attr->name = expect_name();
          s->target = std::move(attr);
        } else if (is_op(",")) {
          auto tuple = make(Expr::Kind::Tuple, tline);
          auto first = make(Expr::Kind::Name, tline);
          first->name = name;
          tuple->args.push_back(std::move(first));
          while (is_op(",")) {
            next();
            auto n = make(Expr::Kind::Name, tline);
            n->name = expect_name();
            tuple->args.push_back(std::move(n));
          }
          s->target = std::move(tuple);
        } else {
          s->target = make(Expr::Kind::Name, tline);
          s->target->name = name;
        }
        expect_op("=");
        s->expr = parse_tuple(true);
        expect_block_end();
      } else {
        s->kind = Stmt::Kind::SetBlock;
        s->name = name;
        if (is_op("|")) s->filter = parse_filters(nullptr);
        expect_block_end();
        s->body = parse_body({"endset"}, found);
        expect_block_end();
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->name = expect_name();
      parse_params(s->params);
      expect_block_end();
      s->body = parse_body({"endmacro"}, found);
      if (peek().type == TokenType::Name) next();  // {% endmacro name %}
      expect_block_end();
    } else if (tag == "call") {
      s->kind = Stmt::Kind::CallBlock;
      if (is_op("(")) parse_params(s->params);
      s->expr = parse_expression(true);
      if (s->expr->kind != Expr::Kind::Call) error("expected a macro call");
      expect_block_end();
      s->body = parse_body({"endcall"}, found);
      expect_block_end();
    } else if (tag == "filter") {
      s->kind = Stmt::Kind::FilterBlock;
      s->filter = parse_filters(nullptr, /*leading_pipe=*/false);
      expect_block_end();
      s->body = parse_body({"endfilter"}, found);
      expect_block_end();
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_block_end();
    } else if (tag == "with") {
      s->kind = Stmt::Kind::With;
      while (peek().type != TokenType::BlockEnd) {
        if (!s->params.empty()) expect_op(",");
        MacroParam p;
        p.name = expect_name();
        expect_op("=");
        p.default_value = parse_expression(true);
        s->params.push_back(std::move(p));
      }
      expect_block_end();
      s->body = parse_body({"endwith"}, found);
      expect_block_end();
    } else if (tag == "generation") {
      s->kind = Stmt::Kind::Scope;
      expect_block_end();
      s->body = parse_body({"endgeneration"}, found);
      expect_block_end();
    } else {
      fail("template syntax error: unknown or unsupported tag '{}' (line {})", tag, line);
    }
    return s;
  }

  void parse_params(std::vector<MacroParam>& params) {
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam p;
      p.name = expect_name();
      if (is_op("=")) {
        next();
        p.default_value = parse_expression(true);
      }
      params.push_back(std::move(p));
    }
    next();
  }

  // parse_tuple: "a, b" without parentheses forms a tuple (as in {{ a, b }} or set x = 1, 2).
  ExprPtr parse_tuple(bool with_condexpr) {
    int line = peek().line;
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto tuple = make(Expr::Kind::Tuple, line);
    tuple->args.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (peek().type == TokenType::BlockEnd || peek().type == TokenType::VarEnd) break;
      tuple->args.push_back(parse_expression(with_condexpr));
    }
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    ExprPtr expr = parse_or();
    if (!with_condexpr) return expr;
    while (is_name("if")) {
      int line = next().line;
      auto cond = make(Expr::Kind::Cond, line);
      ExprPtr test = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        next();
        otherwise = parse_expression(true);
      }
      cond->args.push_back(std::move(test));
      cond->args.push_back(std::move(expr));
      cond->args.push_back(std::move(otherwise));
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr binary(const std::string& op, ExprPtr lhs, ExprPtr rhs, int line) {
    auto e = make(Expr::Kind::Binary, line);
    e->name = op;
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr lhs = parse_and();
    while (is_name("or")) {
      int line = next().line;
      lhs = binary("or", std::move(lhs), parse_and(), line);
    }
    return lhs;
  }

  ExprPtr parse_and() {
    ExprPtr lhs = parse_not();
    while (is_name("and")) {
      int line = next().line;
      lhs = binary("and", std::move(lhs), parse_not(), line);
    }
    return lhs;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      int line = next().line;
      auto e = make(Expr::Kind::Unary, line);
      e->name = "not";
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = peek().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<Expr> cmp;
    while (true) {
      std::string op;
      if (peek().type == TokenType::Operator &&
          (peek().value == "==" || peek().value == "!=" || peek().value == "<" || peek().value == ">" ||
           peek().value == "<=" || peek().value == ">=")) {
        op = next().value;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr lhs = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& tok = next();
      lhs = binary(tok.value, std::move(lhs), parse_concat(), tok.line);
    }
    return lhs;
  }

  ExprPtr parse_concat() {
    ExprPtr lhs = parse_math2();
    while (is_op("~")) {
      int line = next().line;
      lhs = binary("~", std::move(lhs), parse_math2(), line);
    }
    return lhs;
  }

  ExprPtr parse_math2() {
    ExprPtr lhs = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& tok = next();
      lhs = binary(tok.value, std::move(lhs), parse_pow(), tok.line);
    }
    return lhs;
  }

  ExprPtr parse_pow() {
    ExprPtr lhs = parse_unary(true);
    while (is_op("**")) {
      int line = next().line;
      lhs = binary("**", std::move(lhs), parse_unary(true), line);
    }
    return lhs;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& tok = next();
      node = make(Expr::Kind::Unary, tok.line);
      node->name = tok.value;
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    int line = tok.line;
    switch (tok.type) {
      case TokenType::Name: {
        next();
        auto e = make(Expr::Kind::Literal, line);
        if (tok.value == "true" || tok.value == "True") e->value = Value(true);
        else if (tok.value == "false" || tok.value == "False") e->value = Value(false);
        else if (tok.value == "none" || tok.value == "None") e->value = Value(None{});
        else {
          e->kind = Expr::Kind::Name;
          e->name = tok.value;
        }
        return e;
      }
      case TokenType::String: {
        std::string s;
        while (peek().type == TokenType::String) s += next().value;  // adjacent literals join
        auto e = make(Expr::Kind::Literal, line);
        e->value = Value(std::move(s));
        return e;
      }
      case TokenType::Integer: {
        next();
        auto e = make(Expr::Kind::Literal, line);
        errno = 0;
        long long v = std::strtoll(tok.value.c_str(), nullptr, 10);
        if (errno == ERANGE) e->value = Value(std::strtod(tok.value.c_str(), nullptr));
        else e->value = Value(int64_t(v));
        return e;
      }
      case TokenType::Float: {
        next();
        auto e = make(Expr::Kind::Literal, line);
        e->value = Value(std::strtod(tok.value.c_str(), nullptr));
        return e;
      }
      case TokenType::Operator:
        if (tok.value == "(") {
          next();
          if (is_op(")")) {
            next();
            return make(Expr::Kind::Tuple, line);
          }
          ExprPtr first = parse_expression(true);
          if (is_op(")")) {
            next();
            return first;
          }
          auto tuple = make(Expr::Kind::Tuple, line);
          tuple->args.push_back(std::move(first));
          while (is_op(",")) {
            next();
            if (is_op(")")) break;
            tuple->args.push_back(parse_expression(true));
          }
          expect_op(")");
          return tuple;
        }
        if (tok.value == "[") {
          next();
          auto list = make(Expr::Kind::List, line);
          while (!is_op("]")) {
            if (!list->args.empty()) expect_op(",");
            if (is_op("]")) break;
            list->args.push_back(parse_expression(true));
          }
          next();
          return list;
        }
        if (tok.value == "{") {
          next();
          auto dict = make(Expr::Kind::Dict, line);
          while (!is_op("}")) {
            if (!dict->args.empty()) expect_op(",");
            if (is_op("}")) break;
            dict->args.push_back(parse_expression(true));
            expect_op(":");
            dict->args.push_back(parse_expression(true));
          }
          next();
          return dict;
        }
        break;
      default:
        break;
    }
    error("unexpected token in expression");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        int line = next().line;
        if (peek().type == TokenType::Integer) {
          auto idx = make(Expr::Kind::Index, line);
          auto lit = make(Expr::Kind::Literal, line);
          lit->value = Value(int64_t(std::strtoll(next().value.c_str(), nullptr, 10)));
          idx->args.push_back(std::move(node));
          idx->args.push_back(std::move(lit));
          node = std::move(idx);
          continue;
        }
        auto attr = make(Expr::Kind::Attr, line);
        attr->name = expect_name();
        attr->args.push_back(std::move(node));
        node = std::move(attr);
      } else if (is_op("[")) {
        int line = next().line;
        node = parse_subscript(std::move(node), line);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr base, int line) {
    ExprPtr parts[3];
    bool is_slice = false;
    if (!is_op(":")) parts[0] = parse_expression(true);
    if (is_op(":")) {
      is_slice = true;
      next();
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
      if (is_op(":")) {
        next();
        if (!is_op("]")) parts[2] = parse_expression(true);
      }
    }
    expect_op("]");
    auto e = make(is_slice ? Expr::Kind::Slice : Expr::Kind::Index, line);
    e->args.push_back(std::move(base));
    if (is_slice) {
      for (auto& p : parts) e->args.push_back(std::move(p));
    } else {
      e->args.push_back(std::move(parts[0]));
    }
    return e;
  }

  // Parses "(args, kw=value)" into e->args (after any already there) and e->kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("*args and **kwargs in calls are not supported");
      if (peek().type == TokenType::Name && is_op("=", 1)) {
        std::string key = next().value;
        next();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error("positional argument after keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto call = make(Expr::Kind::Call, peek().line);
    call->args.push_back(std::move(callee));
    parse_call_args(*call);
    return call;
  }

  // One or more "| name(args)"; `input` may be null (filter blocks and block sets).
  ExprPtr parse_filters(ExprPtr input, bool leading_pipe = true) {
    bool first = true;
    while ((first && !leading_pipe) || is_op("|")) {
      if (!(first && !leading_pipe)) next();
      first = false;
      auto f = make(Expr::Kind::Filter, peek().line);
      f->name = expect_name();
      while (is_op(".")) {  // dotted filter names
        next();
        f->name += "." + expect_name();
      }
      f->args.push_back(std::move(input));
      if (is_op("(")) parse_call_args(*f);
      input = std::move(f);
    }
    return input;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filters(std::move(node));
      } else if (is_name("is")) {
        int line = next().line;
        auto test = make(Expr::Kind::Test, line);
        if (is_name("not")) {
          next();
          test->negated = true;
        }
        test->name = expect_name();
        test->args.push_back(std::move(node));
        if (is_op("(")) {
          parse_call_args(*test);
        } else {
          const Token& tok = peek();
          bool arg_follows = tok.type == TokenType::String || tok.type == TokenType::Integer ||
                             tok.type == TokenType::Float || is_op("[") || is_op("{") ||
                             (tok.type == TokenType::Name && tok.value != "else" && tok.value != "or" &&
                              tok.value != "and" && tok.value != "if" && tok.value != "in" && tok.value != "is" &&
                              tok.value != "not");
          if (arg_follows) test->args.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(test);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace ferrum::chat::jinja
