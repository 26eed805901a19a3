-- pgtopic 0.2.0 -> 0.3.0. Each section belongs to one change; keep them in the order they landed.
\echo Use "ALTER EXTENSION pgtopic UPDATE TO '0.3.0'" to load this file. \quit

