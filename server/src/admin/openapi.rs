//! The admin API's OpenAPI document, generated from the handlers' annotations and the
//! response types (utoipa), so it cannot drift from the code. Never written by hand.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

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
        openapi_doc,
        list_pulls
    ),
    components(schemas(
        BanAddress,
        StreamName,
        ClientInfo,
        ClientRole,
        BanInfo,
        BanSource,
        NewBan,
        BanAdded,
        Kicked,
        ReloadReport,
        crate::pull::PullStatus,
        ErrorBody
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct AdminApi;

struct BearerAuth;

/// An IPv4 address with an optional prefix length, as `bans::parse_net` reads it.
const IPV4_OR_CIDR: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(/(3[0-2]|[12]?[0-9]))?$";

/// The address of a ban: an IPv6 address, or an IPv4 address or range. (IPv6 ranges work
/// as well; the schema leaves them out to stay a regular language.)
pub struct BanAddress;

impl PartialSchema for BanAddress {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(IPV4_OR_CIDR)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))),
            )
            .description(Some(
                "An IP address (`203.0.113.7`) or a CIDR range (`10.0.0.0/8`)",
            ))
            .into()
    }
}

impl ToSchema for BanAddress {}

/// An app or stream name, as `hub::parse_stream_name` accepts it.
pub struct StreamName;

impl PartialSchema for StreamName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,199}$"))
            .into()
    }
}

impl ToSchema for StreamName {}

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
            ("/api/admin/pulls", "get"),
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
