// Reads a JSON array of {range_ms, max_data_points, min_interval} on stdin and
// writes, for each, the interval Grafana's frontend gives a panel's queries:
// @grafana/data's rangeUtil.calculateInterval (the range over the max data
// points, rounded to a "nice" interval, raised to the min interval), the
// function behind $__interval and $__auto. (CommonJS: the ESM build's named
// import of moment-timezone fails under plain Node.)
const { rangeUtil, dateTime } = require("@grafana/data");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ range_ms, max_data_points, min_interval }) => {
    const to = dateTime(1_800_000_000_000);
    const from = dateTime(to.valueOf() - range_ms);
    return rangeUtil.calculateInterval({ from, to, raw: { from, to } }, max_data_points, min_interval).intervalMs;
  });
  process.stdout.write(JSON.stringify(out));
});
