#include "chat/jinja_template.h"

#include <cmath>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"
#include "core/error.h"

namespace ferrum::chat::jinja {
namespace {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get())
      for (const auto& [k, v] : f->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};
using FramePtr = std::shared_ptr<Frame>;

FramePtr child_of(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

enum class Flow { Normal, Break, Continue };

// Lists built by + and * (the only ways a template grows one) stay below this many items.
constexpr size_t kMaxListItems = 1000000;

template <typename Op>
int64_t checked(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op(x, y, &r)) fail("integer overflow in template arithmetic");
  return r;
}
bool add_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

double py_floor_mod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

// The bytes of a list's string items, which a copy of the list copies (lists and dicts are
// shared): [s] * 1000 of a 30 MB string would otherwise allocate 30 GB.
size_t string_bytes(const Array& items) {
  size_t n = 0;
  for (const Value& v : items)
    if (v.is_string()) n += v.as_string().size();
  return n;
}

// size * count, saturated (a 60 MB string times 2**40 must not wrap round to a small size).
size_t times(size_t size, int64_t count) {
  size_t out = 0;
  return __builtin_mul_overflow(size, static_cast<uint64_t>(std::max<int64_t>(0, count)), &out) ? SIZE_MAX : out;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined())
    fail("'{}' is undefined", a.is_undefined() ? a.undefined_name() : b.undefined_name());
  bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  bool nums = (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool());
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      StringLimit::check(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_array() && b.is_array()) {
      if (a.as_array().size() + b.as_array().size() > kMaxListItems) fail("list too large (limit {} items)", kMaxListItems);
      StringLimit::check(string_bytes(a.as_array()) + string_bytes(b.as_array()));
      Array out = a.as_array();
      out.insert(out.end(), b.as_array().begin(), b.as_array().end());
      return Value(std::move(out));
    }
  }
  if (op == "*" && (a.is_string() || a.is_array()) && (b.is_int() || b.is_bool())) {
    int64_t n = std::max<int64_t>(0, b.is_bool() ? b.as_bool() : b.as_int());
    // An empty operand passes the size limits at any count: without this, '' * 10**9 loops
    // a billion times (found by fuzz_jinja).
    if (a.is_string() && a.as_string().empty()) return Value(std::string());
    if (a.is_array() && a.as_array().empty()) return Value(Array());
    if (a.is_string()) {
      StringLimit::check(times(a.as_string().size(), n));
      std::string out;
      out.reserve(a.as_string().size() * static_cast<size_t>(n));  // within the limit: checked above
      for (int64_t i = 0; i < n; ++i) out += a.as_string();
      return Value(out);
    }
    if (times(a.as_array().size(), n) > kMaxListItems)
      fail("list too large (limit {} items)", kMaxListItems);
    StringLimit::check(times(string_bytes(a.as_array()), n));
    Array out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), a.as_array().begin(), a.as_array().end());
    return Value(std::move(out));
  }
  if (op == "*" && (b.is_string() || b.is_array()) && (a.is_int() || a.is_bool())) return arithmetic(op, b, a);
  if (op == "%" && a.is_string()) return Value(percent_format(a.as_string(), b));
  if (!nums) fail("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
  int64_t x = ints ? (a.is_bool() ? a.as_bool() : a.as_int()) : 0;
  int64_t y = ints ? (b.is_bool() ? b.as_bool() : b.as_int()) : 0;
  double dx = a.as_double(), dy = b.as_double();
  if (op == "+") return ints ? Value(checked(add_ovf, x, y)) : Value(dx + dy);
  if (op == "-") return ints ? Value(checked(sub_ovf, x, y)) : Value(dx - dy);
  if (op == "*") return ints ? Value(checked(mul_ovf, x, y)) : Value(dx * dy);
  if (op == "/") {
    if (dy == 0) fail("division by zero");
    return Value(dx / dy);
  }
  if (op == "//" || op == "%") {
    if (dy == 0) fail("integer division or modulo by zero");
    if (ints) {
      if (x == INT64_MIN && y == -1) fail("integer overflow in template arithmetic");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return op == "//" ? Value(q) : Value(m);
    }
    return op == "//" ? Value(std::floor(dx / dy)) : Value(py_floor_mod(dx, dy));
  }
  if (op == "**") {
    if (ints && y >= 0) {
      int64_t result = 1;
      for (int64_t i = 0; i < y; ++i) {
        result = checked(mul_ovf, result, x);
        if (result == 0 || result == 1) break;
      }
      return Value(result);
    }
    return Value(std::pow(dx, dy));
  }
  fail("unknown operator {}", op);
}

bool compare_less(const Value& a, const Value& b) {
  NestingGuard guard;
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) return a.as_double() < b.as_double();
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_array() && b.is_array()) {
    const Array &x = a.as_array(), &y = b.as_array();
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      if (!x[i].equals(y[i])) return compare_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

bool contains(const Value& container, const Value& item) {
  if (container.is_undefined()) return false;
  if (container.is_string()) {
    if (!item.is_string()) fail("'in <string>' requires string as left operand, not {}", item.type_name());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_object()) return item.is_string() && container.as_object().find(item.as_string()) != nullptr;
  if (container.is_array()) {
    for (const auto& v : container.as_array())
      if (v.equals(item)) return true;
    return false;
  }
  fail("argument of type '{}' is not iterable", container.type_name());
}

class Interpreter {
 public:
  explicit Interpreter(const RenderLimits& limits) : lim_(limits) {}

  Flow exec(const Body& body, const FramePtr& frame, std::string& out) {
    for (const auto& stmt : body) {
      Flow flow = exec_stmt(*stmt, frame, out);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

 private:
  void emit(std::string& out, const std::string& s) {
    if (out.size() + s.size() > lim_.max_output_bytes)
      fail("template output too large (limit {} bytes)", lim_.max_output_bytes);
    out += s;
  }

  Flow exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Text: emit(out, s.text); return Flow::Normal;
      case Stmt::Kind::Output: emit(out, eval(*s.expr, frame).str()); return Flow::Normal;
      case Stmt::Kind::If:
        for (const auto& [cond, body] : s.branches)
          if (!cond || eval(*cond, frame).truthy()) return exec(body, frame, out);
        return Flow::Normal;
      case Stmt::Kind::For: return exec_for(s, frame, out);
      case Stmt::Kind::Set: assign(*s.target, eval(*s.expr, frame), frame); return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        std::string captured;
        exec(s.body, frame, captured);
        Value v(captured);
        if (s.filter) v = eval_filter_chain(*s.filter, v, frame);
        frame->set(s.name, v);
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: frame->set(s.name, make_macro(s.name, s.params, s.body, frame)); return Flow::Normal;
      case Stmt::Kind::CallBlock: {
        Value caller = make_macro("caller", s.params, s.body, frame);
        emit(out, eval_call(*s.expr, frame, &caller).str());
        return Flow::Normal;
      }
      case Stmt::Kind::FilterBlock: {
        std::string captured;
        exec(s.body, frame, captured);
        emit(out, eval_filter_chain(*s.filter, Value(captured), frame).str());
        return Flow::Normal;
      }
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
      case Stmt::Kind::Scope: return exec(s.body, frame, out);
      case Stmt::Kind::With: {
        auto f = child_of(frame);
        for (const auto& p : s.params) f->set(p.name, eval(*p.default_value, frame));
        return exec(s.body, f, out);
      }
    }
    return Flow::Normal;
  }

  void count_iteration() {
    if (++iterations_ > lim_.max_loop_iterations)
      fail("template loop limit exceeded ({} iterations)", lim_.max_loop_iterations);
  }

  void bind_loop_vars(const Stmt& s, const Value& item, Frame& f) {
    if (s.loop_vars.size() == 1) {
      f.set(s.loop_vars[0], item);
      return;
    }
    Array parts = iterate(item);
    if (parts.size() != s.loop_vars.size())
      fail("cannot unpack {} values into {} loop variables (line {})", parts.size(), s.loop_vars.size(), s.line);
    for (size_t i = 0; i < parts.size(); ++i) f.set(s.loop_vars[i], parts[i]);
  }

  Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
    Value iterable = eval(*s.expr, frame);
    if (iterable.is_none()) fail("'NoneType' object is not iterable (line {})", s.line);
    Array items = iterate(iterable);
    if (s.filter) {
      Array kept;
      for (const auto& item : items) {
        count_iteration();
        auto f = child_of(frame);
        bind_loop_vars(s, item, *f);
        if (eval(*s.filter, f).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, frame, out);
    int64_t n = int64_t(items.size());
    for (int64_t i = 0; i < n; ++i) {
      count_iteration();
      // A fresh frame per iteration: in jinja2 a variable set in the body does not carry over
      // to the next iteration (@huggingface/jinja differs here; see snippet set_scoping).
      auto f = child_of(frame);
      bind_loop_vars(s, items[size_t(i)], *f);
      auto loop = make_object();
      auto& li = loop->items;  // fresh object: append without the duplicate-key search of set()
      li.reserve(12);
      li.emplace_back("index", Value(i + 1));
      li.emplace_back("index0", Value(i));
      li.emplace_back("revindex", Value(n - i));
      li.emplace_back("revindex0", Value(n - i - 1));
      li.emplace_back("first", Value(i == 0));
      li.emplace_back("last", Value(i == n - 1));
      li.emplace_back("length", Value(n));
      li.emplace_back("depth", Value(int64_t(1)));
      li.emplace_back("depth0", Value(int64_t(0)));
      li.emplace_back("previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("previtem"));
      li.emplace_back("nextitem", i + 1 < n ? items[size_t(i + 1)] : Value::undefined("nextitem"));
      li.emplace_back("cycle", Value(Function([i](CallArgs& a) {
        if (a.positional.empty()) fail("no items for cycling given");
        return a.positional[size_t(i) % a.positional.size()];
      })));
      f->set("loop", Value(loop));
      Flow flow = exec(s.body, f, out);
      if (flow == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void assign(const Expr& target, const Value& v, const FramePtr& frame) {
    if (target.kind == Expr::Kind::Name) {
      frame->set(target.name, v);
    } else if (target.kind == Expr::Kind::Attr) {
      Value obj = eval(*target.args[0], frame);
      if (!obj.is_object() || !obj.as_object().is_namespace)
        fail("cannot assign attribute on non-namespace object (line {})", target.line);
      obj.as_object().set(target.name, v);
    } else {
      Array parts = iterate(v);
      if (parts.size() != target.args.size()) fail("cannot unpack {} values in set (line {})", parts.size(), target.line);
      for (size_t i = 0; i < parts.size(); ++i) assign(*target.args[i], parts[i], frame);
    }
  }

  Value make_macro(const std::string& name, const std::vector<MacroParam>& params, const Body& body,
                   const FramePtr& def_frame) {
    std::weak_ptr<Frame> weak = def_frame;
    const std::vector<MacroParam>* p = &params;
    const Body* b = &body;
    return Value(Function([this, name, weak, p, b](CallArgs& a) {
      FramePtr parent = weak.lock();
      if (!parent) fail("macro '{}' called after its template finished", name);
      if (a.positional.size() > p->size()) fail("macro '{}' takes not more than {} argument(s)", name, p->size());
      auto f = child_of(parent);
      for (size_t i = 0; i < p->size(); ++i) {
        const MacroParam& param = (*p)[i];
        if (i < a.positional.size()) f->set(param.name, a.positional[i]);
        else if (const Value* kw = a.kwarg(param.name)) f->set(param.name, *kw);
        else if (param.default_value) f->set(param.name, eval(*param.default_value, f));
        else f->set(param.name, Value::undefined(param.name));
      }
      for (const auto& [k, v] : a.keyword) {
        bool known = k == "caller";
        for (const auto& param : *p) known |= param.name == k;
        if (!known) fail("macro '{}' takes no keyword argument '{}'", name, k);
        if (k == "caller") f->set(k, v);
      }
      std::string out;
      exec(*b, f, out);
      return Value(out);
    }));
  }

  Value call(const Value& callee, CallArgs& args, const std::string& what, int line) {
    if (!callee.is_function()) {
      if (callee.is_undefined()) fail("'{}' is undefined (line {})", callee.undefined_name().empty() ? what : callee.undefined_name(), line);
      fail("'{}' object is not callable (line {})", callee.type_name(), line);
    }
    if (++depth_ > lim_.max_call_depth) fail("template recursion too deep (limit {} calls)", lim_.max_call_depth);
    struct Restore {
      int& d;
      ~Restore() { --d; }
    } restore{depth_};
    return callee.as_function()(args);
  }

  CallArgs eval_args(const Expr& e, size_t first, const FramePtr& frame) {
    CallArgs args;
    for (size_t i = first; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i], frame));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v, frame));
    return args;
  }

  Value eval_call(const Expr& e, const FramePtr& frame, const Value* caller) {
    Value callee = eval(*e.args[0], frame);
    CallArgs args = eval_args(e, 1, frame);
    if (caller) args.keyword.emplace_back("caller", *caller);
    const Expr& fn = *e.args[0];
    return call(callee, args, fn.kind == Expr::Kind::Name || fn.kind == Expr::Kind::Attr ? fn.name : "call", e.line);
  }

  Value eval_filter_chain(const Expr& e, const Value& input, const FramePtr& frame) {
    Value in = e.args[0] ? eval_filter_chain(*e.args[0], input, frame) : input;
    CallArgs args = eval_args(e, 1, frame);
    return apply_filter(e.name, in, args);
  }

  Value eval(const Expr& e, const FramePtr& frame) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: {
        const Value* v = frame->find(e.name);
        return v ? *v : Value::undefined(e.name);
      }
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        Array items;
        for (const auto& a : e.args) items.push_back(eval(*a, frame));
        return Value(std::move(items));
      }
      case Expr::Kind::Dict: {
        auto obj = make_object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i], frame);
          obj->set(k.str(), eval(*e.args[i + 1], frame));
        }
        return Value(obj);
      }
      case Expr::Kind::Attr: return get_attr(eval(*e.args[0], frame), e.name);
      case Expr::Kind::Index: return get_item(eval(*e.args[0], frame), eval(*e.args[1], frame));
      case Expr::Kind::Slice: {
        Value parts[3];
        for (int i = 0; i < 3; ++i)
          if (e.args[size_t(i) + 1]) parts[i] = eval(*e.args[size_t(i) + 1], frame);
        return get_slice(eval(*e.args[0], frame), parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::Call: return eval_call(e, frame, nullptr);
      case Expr::Kind::Filter: {
        Value in = eval(*e.args[0], frame);
        CallArgs args = eval_args(e, 1, frame);
        return apply_filter(e.name, in, args);
      }
      case Expr::Kind::Test: {
        Value in = eval(*e.args[0], frame);
        CallArgs args = eval_args(e, 1, frame);
        return Value(apply_test(e.name, in, args) != e.negated);
      }
      case Expr::Kind::Unary: {
        Value v = eval(*e.args[0], frame);
        if (e.name == "not") return Value(!v.truthy());
        if (v.is_undefined()) fail("'{}' is undefined (line {})", v.undefined_name(), e.line);
        if (e.name == "+") return v;
        if (v.is_int()) {
          if (v.as_int() == INT64_MIN) fail("integer overflow in template arithmetic");
          return Value(-v.as_int());
        }
        if (v.is_bool()) return Value(-int64_t(v.as_bool()));
        if (v.is_float()) return Value(-v.as_double());
        fail("bad operand type for unary -: '{}' (line {})", v.type_name(), e.line);
      }
      case Expr::Kind::Binary: {
        if (e.name == "and") {
          Value l = eval(*e.args[0], frame);
          return l.truthy() ? eval(*e.args[1], frame) : l;
        }
        if (e.name == "or") {
          Value l = eval(*e.args[0], frame);
          return l.truthy() ? l : eval(*e.args[1], frame);
        }
        Value l = eval(*e.args[0], frame);
        Value r = eval(*e.args[1], frame);
        if (e.name == "~") {
          std::string a = l.str(), b = r.str();
          StringLimit::check(a.size() + b.size());
          return Value(a + b);
        }
        try {
          return arithmetic(e.name, l, r);
        } catch (const Error& err) {
          fail("{} (line {})", err.what(), e.line);
        }
      }
      case Expr::Kind::Compare: {
        Value left = eval(*e.args[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], frame);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==") ok = left.equals(right);
          else if (op == "!=") ok = !left.equals(right);
          else if (op == "in") ok = contains(right, left);
          else if (op == "not in") ok = !contains(right, left);
          else if (op == "<") ok = compare_less(left, right);
          else if (op == ">") ok = compare_less(right, left);
          else if (op == "<=") ok = !compare_less(right, left);
          else ok = !compare_less(left, right);
          if (!ok) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::Cond: {
        if (eval(*e.args[0], frame).truthy()) return eval(*e.args[1], frame);
        return e.args[2] ? eval(*e.args[2], frame) : Value::undefined("else");
      }
    }
    return Value();
  }

  RenderLimits lim_;
  uint64_t iterations_ = 0;
  int depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source) : body_(parse(tokenize(source))) {}

std::string Template::render(const Value& context, const RenderLimits& limits) const {
  struct LimitScope {
    size_t saved;
    explicit LimitScope(size_t v) : saved(StringLimit::max_bytes()) { StringLimit::max_bytes() = v; }
    ~LimitScope() { StringLimit::max_bytes() = saved; }
  } scope(limits.max_output_bytes);
  auto globals = std::make_shared<Frame>();
  Object builtins;
  add_builtin_globals(builtins);
  for (auto& [k, v] : builtins.items) globals->set(k, v);
  auto root = child_of(globals);
  if (context.is_object())
    for (const auto& [k, v] : context.as_object().items) root->set(k, v);
  std::string out;
  Interpreter(limits).exec(body_, root, out);
  return out;
}

}  // namespace ferrum::chat::jinja
