// Syntax tree of a parsed template.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace ferrum::chat::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // args = items
    Tuple,     // args = items
    Dict,      // args = key0, value0, key1, value1 ...
    Attr,      // args[0].name
    Index,     // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    Call,      // args[0](args[1..], kwargs)
    Filter,    // name(args[0], args[1..], kwargs); args[0] null inside a filter block
    Test,      // args[0] is name(args[1..]); negated for "is not"
    Unary,     // name in {"-", "+", "not"}; args[0]
    Binary,    // name is the operator; args[0], args[1]
    Compare,   // args[0] (ops[i] args[i+1])...
    Cond,      // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  enum class Kind {
    Text,         // text
    Output,       // {{ expr }}
    If,           // branches (cond, body); a null cond is the else branch
    For,          // targets in expr [if filter]; body; else_body
    Set,          // target = expr (target is a Name, Attr or Tuple)
    SetBlock,     // {% set name %}body{% endset %}, optional filter applied
    Macro,        // name(params) body
    CallBlock,    // {% call(params) expr %}body{% endcall %}
    FilterBlock,  // {% filter f %}body{% endfilter %}; expr is the filter chain
    Break,
    Continue,
    Scope,        // a body rendered inline ({% generation %} ... {% endgeneration %})
    With,         // {% with a = x, b = y %}body{% endwith %}: params hold the names and values
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::string name;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr filter;
  std::vector<std::string> loop_vars;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<MacroParam> params;
  Body body;
  Body else_body;
};

}  // namespace ferrum::chat::jinja
