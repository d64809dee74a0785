// Reads a JSON array of LogQL expressions on stdin and writes, for each,
// the parse errors and the names it refers to:
//   {"expr", "errors": [offset...], "stream_labels": [...], "fields": [...],
//    "defined": [...], "values": {label: [value...]}}
// Grafana's variables ($__auto, ...) must be replaced before.
import { parser } from "@grafana/lezer-logql";

const input = await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
});

function analyse(expr) {
  const out = { expr, errors: [], stream_labels: [], fields: [], defined: [], values: {} };
  const text = (node) => expr.slice(node.from, node.to);
  const unquote = (s) => (s.startsWith("`") ? s.slice(1, -1) : JSON.parse(s));
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) out.errors.push(node.from);
      if (node.name === "Matcher") {
        const name = node.node.getChild("Identifier");
        const value = node.node.getChild("String");
        if (!name) return;
        const inSelector = node.node.parent?.name === "Matchers";
        (inSelector ? out.stream_labels : out.fields).push(text(name));
        if (value) (out.values[text(name)] ??= []).push(unquote(text(value)));
      }
      // Identifiers elsewhere: grouping, unwrap, json parameters, filters.
      if (node.name === "Identifier" && node.node.parent?.name !== "Matcher") {
        const parent = node.node.parent?.name;
        if (parent === "LabelFormatMatcher") {
          // label_format new=`template`: the left side is defined here.
          if (node.node.prevSibling === null) out.defined.push(text(node));
        } else {
          out.fields.push(text(node));
        }
      }
      // Template fields: line_format "{{.message}}", label_format `{{ .verdict }}`.
      if (node.name === "String" && ["LineFormatExpr", "LabelFormatMatcher"].includes(node.node.parent?.name)) {
        for (const m of unquote(text(node)).matchAll(/\.([A-Za-z_][A-Za-z0-9_]*)/g)) out.fields.push(m[1]);
      }
    },
  });
  return out;
}

process.stdout.write(JSON.stringify(JSON.parse(input).map(analyse)));
