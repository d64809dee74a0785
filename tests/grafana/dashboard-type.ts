// The dashboard's type as Grafana publishes it (@grafana/schema), with each
// enum replaced by its values: a JSON file holds "absolute", not
// ThresholdsMode.Absolute, and 0, not VariableHide.dontHide. The test writes
// the dashboard as a `const dashboard: CheckedDashboard = {...}` literal, so
// tsc reports wrong types and excess (unknown) properties alike.
import type { Dashboard } from "@grafana/schema";

type Plain<T> = T extends string
  ? `${T}`
  : T extends number
    ? `${T}` extends `${infer N extends number}`
      ? N
      : number
    : T extends ReadonlyArray<infer U>
      ? Array<Plain<U>>
      : T extends object
        ? { [K in keyof T]: Plain<T[K]> }
        : T;

export type CheckedDashboard = Plain<Dashboard>;
