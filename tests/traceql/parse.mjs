// Reads a JSON array of TraceQL queries on stdin and writes, for each, the
// offsets where Grafana's own grammar (the one its query editor uses) finds
// a syntax error: [{"query", "errors": [offset...]}].
import { parser } from "@grafana/lezer-traceql";

const input = await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
});

function errors(query) {
  const found = [];
  parser.parse(query).iterate({
    enter(node) {
      if (node.type.isError) found.push(node.from);
    },
  });
  return found;
}

process.stdout.write(JSON.stringify(JSON.parse(input).map((query) => ({ query, errors: errors(query) }))));
