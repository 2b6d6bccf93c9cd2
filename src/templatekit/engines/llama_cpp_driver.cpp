// templatekit's driver for llama.cpp's Jinja engine (common/jinja), built by
// `templatekit engines install llama.cpp` against the sources vendored in the llama-cpp-python sdist.
//
// Protocol: one JSON object per line on stdin, one JSON object per line on stdout.
//   {"op": "render", "template": T, "context": {...}}  -> {"ok": true, "text": S}
//   {"op": "caps", "template": T}                      -> {"ok": true, "caps": {name: bool, ...}}
//   failures                                           -> {"ok": false, "kind": K, "error": M}
// with K one of "parse" (lexer/parser), "raise" (the template's raise_exception) or "render".
// The context is handed to jinja::global_from_json as llama-server does (no input marking).

#include "jinja/caps.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "json.h"

#include <iostream>
#include <map>
#include <memory>
#include <string>

namespace {

struct compiled {
    jinja::program prog;
    std::string source;
};

std::map<std::string, std::shared_ptr<compiled>> cache;

std::shared_ptr<compiled> compile(const std::string & text) {
    auto found = cache.find(text);
    if (found != cache.end()) {
        return found->second;
    }
    jinja::lexer lexer;
    auto tokens = lexer.tokenize(text);
    auto result = std::make_shared<compiled>();
    result->prog = jinja::parse_from_tokens(tokens);
    result->source = tokens.source;
    if (cache.size() > 256) {
        cache.clear();
    }
    cache[text] = result;
    return result;
}

common_json failure(const std::string & kind, const std::string & message) {
    common_json out = common_json::object();
    out["ok"] = common_json::make(false);
    out["kind"] = common_json::make(kind);
    out["error"] = common_json::make(message);
    return out;
}

common_json handle(const common_json & request) {
    const std::string op = request.at("op").get<std::string>();
    const std::string text = request.at("template").get<std::string>();
    std::shared_ptr<compiled> program;
    try {
        program = compile(text);
    } catch (const std::exception & e) {
        return failure("parse", e.what());
    }
    common_json out = common_json::object();
    out["ok"] = common_json::make(true);
    if (op == "caps") {
        auto caps = jinja::caps_get(program->prog);
        common_json map = common_json::object();
        for (const auto & [name, value] : caps.to_map()) {
            map[name] = common_json::make(value);
        }
        out["caps"] = map;
        return out;
    }
    try {
        jinja::context ctx(program->source);
        jinja::global_from_json(ctx, request.at("context"), false);
        jinja::runtime runtime(ctx);
        const jinja::value results = runtime.execute(program->prog);
        out["text"] = common_json::make(jinja::runtime::gather_string_parts(results)->as_string().str());
        return out;
    } catch (const jinja::raised_exception & e) {
        return failure("raise", e.what());
    } catch (const std::exception & e) {
        std::string message = e.what();
        return failure(message.find("Jinja Exception: ") != std::string::npos ? "raise" : "render", message);
    }
}

}  // namespace

int main() {
    std::ios::sync_with_stdio(false);
    std::string line;
    while (std::getline(std::cin, line)) {
        common_json out;
        try {
            out = handle(common_json::parse(line));
        } catch (const std::exception & e) {
            out = failure("protocol", e.what());
        }
        std::cout << out.dump_safe() << "\n" << std::flush;
    }
    return 0;
}
