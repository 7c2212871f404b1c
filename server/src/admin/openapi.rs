//! The admin API's OpenAPI document, generated from the handlers' annotations and the
//! response types (utoipa), so it cannot drift from the code. Never written by hand.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::*;
use crate::bans::{BanInfo, BanSource};
use crate::clients::{ClientInfo, ClientRole};
use crate::control::ReloadReport;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "onair admin API",
        description = "Operators' API on its own listener ([admin] addr). Every request needs \
                       `Authorization: Bearer TOKEN` with a token from [admin] tokens."
    ),
    paths(
        list_clients,
        kick_client,
        kick_stream,
        list_bans,
        add_ban,
        remove_ban,
        reload,
        openapi_doc
    ),
    components(schemas(
        ClientInfo,
        ClientRole,
        BanInfo,
        BanSource,
        NewBan,
        BanAdded,
        Kicked,
        ReloadReport,
        ErrorBody
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct AdminApi;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The document as JSON.
pub fn json() -> String {
    AdminApi::openapi().to_pretty_json().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_endpoint_is_documented_with_its_auth() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        for (path, method) in [
            ("/api/admin/clients", "get"),
            ("/api/admin/clients/{id}", "delete"),
            ("/api/admin/streams/{app}/{name}/kick", "post"),
            ("/api/admin/bans", "get"),
            ("/api/admin/bans", "post"),
            ("/api/admin/bans/{address}", "delete"),
            ("/api/admin/reload", "post"),
            ("/api/admin/openapi.json", "get"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} missing");
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let client = &doc["components"]["schemas"]["ClientInfo"]["properties"];
        for field in [
            "id",
            "address",
            "protocol",
            "stream",
            "bytes",
            "duration_s",
            "credential",
        ] {
            assert!(client[field].is_object(), "ClientInfo.{field}");
        }
    }
}
