//! `GET /openapi.json`: the OpenAPI 3 description of every route.

use serde_json::{json, Value};

/// The OpenAPI 3 description of every route the router serves.
pub fn openapi() -> Value {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let paged = json!([
        {"name": "after", "in": "query", "schema": {"type": "integer"}, "description": "return records with seq greater than this (cursor)"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000, "default": 100}}
    ]);
    let read = json!([{"readToken": []}, {}]);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "AIMS Monitor collector", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Ingests window summaries, evaluates AI objectives (ISO/IEC 42001 Clause 6.2) and keeps a hash-chained evidence log."},
        "components": {
            "securitySchemes": {
                "agentToken": {"type": "http", "scheme": "bearer", "description": "per-agent token, scoped to models"},
                "readToken": {"type": "http", "scheme": "bearer", "description": "read token"}
            },
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}}, "required": ["error"]}}
        },
        "paths": {
            "/v1/summaries": {"post": {
                "summary": "Ingest one window summary envelope (JSON, optionally gzip). Idempotent by id.",
                "security": [{"agentToken": []}, {}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"202": ok("committed"), "200": ok("already stored (duplicate)"), "400": err, "401": err, "403": err,
                              "413": err, "422": err, "429": {"description": "overloaded; see Retry-After"}}
            }},
            "/v1/models/{model}/reference": {
                "parameters": [{"name": "model", "in": "path", "required": true, "schema": {"type": "string"}}],
                "put": {"summary": "Store a reference profile (idempotent by content hash)", "security": [{"agentToken": []}, {}],
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                        "responses": {"201": ok("stored"), "200": ok("already stored"), "400": err, "401": err, "403": err}},
                "get": {"summary": "The latest reference profile, or the one with ?version= (hash or model version)",
                        "parameters": [{"name": "version", "in": "query", "schema": {"type": "string"}}],
                        "security": [{"agentToken": []}, {"readToken": []}, {}],
                        "responses": {"200": ok("the profile"), "404": err}}
            },
            "/v1/objectives": {"get": {"summary": "Objectives with state, since, last value", "security": read, "responses": {"200": ok("objectives"), "401": err}}},
            "/v1/objectives/{id}/evaluations": {"get": {
                "summary": "Evaluations of one objective (evidence records), paged",
                "security": read,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "from", "in": "query", "schema": {"type": "string"}, "description": "ms since epoch or RFC 3339"},
                               {"name": "to", "in": "query", "schema": {"type": "string"}},
                               paged[0], paged[1]],
                "responses": {"200": ok("items and next_after"), "400": err, "401": err, "404": err}}},
            "/v1/alerts": {"get": {"summary": "Objectives currently pending or firing", "security": read, "responses": {"200": ok("alerts"), "401": err}}},
            "/v1/evidence": {"get": {"summary": "Evidence records in sequence order, paged, with the chain head", "security": read,
                                     "parameters": paged, "responses": {"200": ok("items, next_after and head"), "401": err}}},
            "/v1/evidence/checkpoint": {"get": {"summary": "The latest signed checkpoint of the evidence tree (C2SP signed note, text/plain)", "security": read,
                                                "responses": {"200": {"description": "the signed note", "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": err, "404": err}}},
            "/v1/reports": {"get": {"summary": "The Clause 9 performance-evaluation report for a period (html, md or json)", "security": read,
                                    "parameters": [{"name": "from", "in": "query", "required": true, "schema": {"type": "string"}, "description": "YYYY-MM-DD, RFC 3339 or ms since epoch"},
                                                   {"name": "to", "in": "query", "required": true, "schema": {"type": "string"}, "description": "a bare date includes that whole day"},
                                                   {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["html", "md", "json"], "default": "html"}},
                                                   {"name": "model", "in": "query", "schema": {"type": "string"}}],
                                    "responses": {"200": {"description": "the report", "content": {"text/html": {}, "text/markdown": {}, "application/json": {"schema": {"type": "object"}}}},
                                                  "400": err, "401": err}}},
            "/-/reload": {"post": {"summary": "Reload the objectives file; an invalid file keeps the old objectives", "security": read,
                                   "responses": {"200": ok("reloaded"), "400": err}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": ok("alive")}}},
            "/readyz": {"get": {"summary": "Readiness (database reachable)", "responses": {"200": ok("ready"), "503": err}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("OpenAPI 3 document")}}}
        }
    })
}
