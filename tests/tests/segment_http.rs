//! End-to-end tests of the fake Segment API over real HTTP on 127.0.0.1.

use fakes::segment::{
    FakeConfig, FakeSegment, Fault, FaultKind, GenSpec, MALFORMED_BODY, PathMatch, Plan, ReadRate,
    Workspace,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "demo-token";

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    fn error(&self) -> Value {
        let v = self.json();
        assert!(v.get("data").is_none(), "error with data: {v}");
        let errs = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors[]: {v}"));
        assert_eq!(errs.len(), 1);
        errs[0].clone()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(fake: &FakeSegment) -> Self {
        Api {
            http: reqwest::Client::new(),
            base: fake.base_url(),
            token: Some(TOKEN.into()),
        }
    }

    fn with_token(fake: &FakeSegment, token: Option<&str>) -> Self {
        Api {
            token: token.map(str::to_string),
            ..Self::new(fake)
        }
    }

    async fn call(&self, method: Method, path_and_query: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request failed");
        let status = resp.status();
        let headers = resp.headers().clone();
        let ct = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            ct.as_deref(),
            Some("application/json"),
            "content type of {path_and_query}"
        );
        let text = resp.text().await.expect("body");
        Resp {
            status,
            headers,
            text,
        }
    }

    async fn get(&self, pq: &str) -> Resp {
        self.call(Method::GET, pq, None).await
    }

    /// GET, expecting 200; returns `data`.
    async fn data(&self, pq: &str) -> Value {
        let r = self.get(pq).await;
        assert_eq!(r.status, StatusCode::OK, "{pq}: {}", r.text);
        let v = r.json();
        assert!(v.get("errors").is_none());
        v["data"].clone()
    }
}

async fn demo() -> (FakeSegment, Api) {
    let fake = FakeSegment::start(FakeConfig::demo()).await.unwrap();
    let api = Api::new(&fake);
    (fake, api)
}

// ---- auth & envelope ---------------------------------------------------------------------

#[tokio::test]
async fn bearer_token_is_required_and_logged() {
    let (fake, _) = demo().await;
    let none = Api::with_token(&fake, None).get("/").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error()["type"], "unauthorized");
    let wrong = Api::with_token(&fake, Some("nope")).get("/users").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error()["type"], "unauthorized");
    let raw = reqwest::Client::new()
        .get(format!("{}/", fake.base_url()))
        .header("Authorization", "Basic ZGVtbzp0b2tlbg==")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);

    let ok = Api::new(&fake).get("/").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.json(),
        json!({"data":{"workspace":{"id":"wkspAcme01","name":"Acme Analytics","slug":"acme-analytics"}}})
    );

    let log = fake.requests();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].authorization, None);
    assert_eq!(log[0].status, 401);
    assert_eq!(log[1].authorization.as_deref(), Some("Bearer nope"));
    assert_eq!(log[3].authorization.as_deref(), Some("Bearer demo-token"));
    assert_eq!(
        (log[3].method.as_str(), log[3].path.as_str(), log[3].status),
        ("GET", "/", 200)
    );
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn success_carries_rate_limit_headers() {
    let (_fake, api) = demo().await;
    let r = api.get("/roles").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-ratelimit-consumed").as_deref(), Some("1"));
    assert!(
        r.header("x-ratelimit-remaining")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let reset = r.header("x-ratelimit-reset").unwrap();
    assert!(reset.ends_with(" GMT") && reset.len() == 29, "{reset}");
    let r = api.get("/roles").await;
    assert_eq!(r.header("x-ratelimit-consumed").as_deref(), Some("2"));
}

#[tokio::test]
async fn unknown_paths_and_ids_are_404_envelopes() {
    let (_fake, api) = demo().await;
    for pq in [
        "/nope",
        "/users/usrNobody",
        "/groups/grpNobody",
        "/groups/grpNobody/users",
        "/users/usrNobody/groups",
        "/spaces/spcNope",
        "/users/",
    ] {
        let r = api.get(pq).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{pq}");
        assert_eq!(r.error()["type"], "not-found", "{pq}");
    }
    let r = api
        .call(
            Method::POST,
            "/users/usrNobody/permissions",
            Some(json!({"permissions":[]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_bodies_are_422() {
    let (fake, api) = demo().await;
    let before = fake.workspace();
    for (method, path) in [
        (Method::POST, "/invites"),
        (Method::POST, "/groups/grpEng/users"),
        (Method::PUT, "/group/grpEng/users"),
        (Method::POST, "/users/usrBob/permissions"),
        (Method::PUT, "/groups/grpEng/permissions"),
        (Method::POST, "/groups"),
        (Method::PATCH, "/groups/grpEng"),
    ] {
        for body in ["{not json", "", "[1,2]"] {
            let r = api
                .http
                .request(method.clone(), format!("{}{}", api.base, path))
                .bearer_auth(TOKEN)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} {body:?}"
            );
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errors"][0]["type"], "input-validation");
        }
    }
    assert_eq!(fake.workspace(), before);
}

// ---- pagination --------------------------------------------------------------------------

async fn walk(
    api: &Api,
    path: &str,
    key: &str,
    query: impl Fn(Option<&str>) -> String,
) -> (Vec<Value>, usize) {
    let mut items = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = api
            .data(&format!("{path}?{}", query(cursor.as_deref())))
            .await;
        pages += 1;
        let p = &data["pagination"];
        assert_eq!(
            p["current"],
            json!(cursor.clone().unwrap_or_else(|| "MA==".into()))
        );
        if pages == 1 {
            assert!(
                p.get("previous").is_none(),
                "previous absent on first page: {p}"
            );
        } else {
            assert!(p["previous"].is_string());
        }
        items.extend(data[key].as_array().unwrap().iter().cloned());
        match p.get("next") {
            None => break,
            Some(Value::String(n)) => cursor = Some(n.clone()),
            Some(other) => panic!("next must be absent or a string, got {other}"),
        }
        assert!(pages < 100);
    }
    (items, pages)
}

#[tokio::test]
async fn pagination_walk_in_every_encoding() {
    let (_fake, api) = demo().await;
    let all = api.data("/users").await;
    assert_eq!(all["users"].as_array().unwrap().len(), 8);
    assert_eq!(
        all["pagination"],
        json!({"current":"MA==","totalEntries":8})
    );

    let enc = |c: &str| c.replace('=', "%3D");
    type QueryFor = Box<dyn Fn(Option<&str>) -> String>;
    let forms: Vec<QueryFor> = vec![
        Box::new(move |c| match c {
            None => "pagination[count]=3".into(),
            Some(c) => format!("pagination[count]=3&pagination[cursor]={}", enc(c)),
        }),
        Box::new(move |c| match c {
            None => "pagination%5Bcount%5D=3".into(),
            Some(c) => format!("pagination%5Bcount%5D=3&pagination%5Bcursor%5D={}", enc(c)),
        }),
        Box::new(move |c| match c {
            None => "pagination.count=3".into(),
            Some(c) => format!("pagination.count=3&pagination.cursor={}", enc(c)),
        }),
    ];
    for form in forms {
        let (items, pages) = walk(&api, "/users", "users", form).await;
        assert_eq!(pages, 3);
        let ids: Vec<_> = items.iter().map(|u| u["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "usrAlice", "usrBob", "usrCarol", "usrDan", "usrErin", "usrFrank", "usrGrace",
                "usrHeidi"
            ]
        );
    }
    let last = api
        .data("/users?pagination[count]=3&pagination[cursor]=Ng%3D%3D")
        .await;
    assert_eq!(
        last["pagination"],
        json!({"current":"Ng==","previous":"Mw==","totalEntries":8})
    );
    assert_eq!(last["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn pagination_validation() {
    let (_fake, api) = demo().await;
    for q in [
        "pagination[count]=0",
        "pagination[count]=1001",
        "pagination.count=0",
        "pagination.count=1001",
        "pagination%5Bcount%5D=abc",
    ] {
        for path in [
            "/users",
            "/roles",
            "/groups",
            "/invites",
            "/sources",
            "/functions?resourceType=SOURCE&x=1",
        ] {
            let sep = if path.contains('?') { "&" } else { "?" };
            let r = api.get(&format!("{path}{sep}{q}")).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {q}");
            let e = r.error();
            assert_eq!(e["type"], "input-validation");
            assert_eq!(e["field"], "pagination.count");
        }
    }
    assert_eq!(
        api.data("/users?pagination[count]=1000").await["users"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(
        api.data("/users?pagination[count]=1").await["pagination"]["next"],
        "MQ=="
    );
    let r = api
        .get("/users?pagination[count]=2&pagination[cursor]=%21%21")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error()["field"], "pagination.cursor");
}

// ---- demo fixture ------------------------------------------------------------------------

#[tokio::test]
async fn demo_fixture_is_served_exactly() {
    let (_fake, api) = demo().await;
    let roles = api.data("/roles").await["roles"].clone();
    let names: Vec<_> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 13);
    assert_eq!(names[0], "Workspace Owner");
    assert_eq!(names[1], "Minimal Workspace Access");
    assert_eq!(names[12], "Data Steward");
    assert_eq!(
        roles[6],
        json!({"id":"roleWhAdmin","name":"Warehouse Destination Admin","description":"Manage warehouse destinations."})
    );

    let users = api.data("/users").await["users"].clone();
    assert_eq!(
        users[3],
        json!({"id":"usrDan","name":"","email":"dan@acme.test"})
    );
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.get("permissions").is_none())
    );

    let erin = api.data("/users/usrErin").await["user"].clone();
    assert_eq!(
        erin,
        json!({"id":"usrErin","name":"Erin Okafor","email":"erin@acme.test","permissions":[
            {"roleId":"roleSrcAdmin","roleName":"Source Admin","labels":[],"resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"key":"environment","value":"prod","description":"Production sources"}]}]},
            {"roleId":"roleSteward","roleName":"Data Steward","labels":[],"resources":[{"id":"srcServer","type":"SOURCE","labels":[]}]}
        ]})
    );
    let bob = api.data("/users/usrBob").await["user"].clone();
    assert_eq!(
        bob["permissions"][0]["resources"],
        json!([{"id":"srcWeb","type":"SOURCE","labels":[]},{"id":"srcIos","type":"SOURCE","labels":[]}])
    );
    assert_eq!(bob["permissions"][1]["roleName"], "Function Read-only");
    assert_eq!(
        api.data("/users/usrHeidi").await["user"]["permissions"],
        json!([])
    );

    let groups = api.data("/groups").await["userGroups"].clone();
    let summary: Vec<_> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap(),
                g["name"].as_str().unwrap(),
                g["memberCount"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("grpEng", "Engineering", 3),
            ("grpData", "Data Platform", 3),
            ("grpAdmins", "Workspace Admins", 1),
            ("grpContractors", "Contractors", 0)
        ]
    );
    assert_eq!(
        groups[1]["permissions"][0],
        json!({"roleId":"roleWhRead","roleName":"Warehouse Destination Read-only","labels":[],"resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[]}]})
    );
    assert_eq!(
        api.data("/groups/grpAdmins").await["userGroup"]["permissions"][0]["roleId"],
        "roleWsOwner"
    );
    let members = api.data("/groups/grpData/users").await;
    assert_eq!(
        members["users"],
        json!([{"id":"usrCarol","name":"Carol Diaz","email":"carol@acme.test"},{"id":"usrErin","name":"Erin Okafor","email":"erin@acme.test"}])
    );
    assert_eq!(
        api.data("/groups/grpData/invites").await["emails"],
        json!(["pat@acme.test"])
    );
    assert_eq!(
        api.data("/groups/grpEng/invites").await["emails"],
        json!([])
    );
    assert_eq!(
        api.data("/users/usrBob/groups").await["groups"],
        json!([{"id":"grpEng","name":"Engineering"}])
    );
    assert_eq!(
        api.data("/users/usrGrace/groups").await["groups"],
        json!([])
    );

    assert_eq!(
        api.data("/invites").await["invites"],
        json!(["pat@acme.test", "quinn@partner.test"])
    );

    let sources = api.data("/sources").await["sources"].clone();
    let s: Vec<_> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["slug"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        s,
        [
            ("srcWeb", "acme-web", "Acme Website", true),
            ("srcIos", "acme-ios", "Acme iOS", true),
            ("srcServer", "acme-server", "", true),
            ("srcLegacy", "legacy-crm", "Legacy CRM", false)
        ]
    );
    let s0 = &sources[0];
    assert_eq!(s0["workspaceId"], "wkspAcme01");
    assert_eq!(
        (
            s0["writeKeys"].clone(),
            s0["settings"].clone(),
            s0["labels"].clone()
        ),
        (json!([]), json!({}), json!([]))
    );
    assert_eq!(s0["metadata"]["isCloudEventSource"], false);

    let wh = api.data("/warehouses").await["warehouses"].clone();
    assert_eq!(wh[0]["id"], "whSnowflake");
    assert_eq!(wh[1]["enabled"], false);
    assert_eq!(wh[1]["metadata"]["id"], "wmBigQuery");
    assert_eq!(wh[1]["metadata"]["slug"], "bigquery");
    assert_eq!(
        wh[1]["metadata"]["description"],
        "Google's serverless data warehouse"
    );
    assert_eq!(wh[0]["workspaceId"], "wkspAcme01");

    for (kind, want) in [
        ("SOURCE", vec!["sfnc_enrich"]),
        ("DESTINATION", vec!["sfnc_slack"]),
        ("INSERT_DESTINATION", vec!["sfnc_mask"]),
        ("INSERT_SOURCE", vec!["sfnc_geo"]),
        ("INSERT_TRANSFORMATION", vec![]),
    ] {
        let f = api
            .data(&format!(
                "/functions?resourceType={kind}&pagination[count]=200"
            ))
            .await["functions"]
            .clone();
        let ids: Vec<_> = f
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, want, "{kind}");
        for item in f.as_array().unwrap() {
            assert_eq!(item["resourceType"], kind);
            for k in [
                "workspaceId",
                "displayName",
                "description",
                "logoUrl",
                "catalogId",
                "createdAt",
                "createdBy",
            ] {
                assert!(item.get(k).is_some(), "{k}");
            }
        }
    }
    let enrich = &api.data("/functions?resourceType=SOURCE").await["functions"][0];
    assert_eq!(
        (
            enrich["displayName"].as_str(),
            enrich["description"].as_str()
        ),
        (
            Some("Enrich Profile"),
            Some("Adds CRM fields to identify calls")
        )
    );

    assert_eq!(
        api.data("/spaces").await["spaces"],
        json!([{"id":"spcProd","slug":"production","name":"Production"},{"id":"spcStaging","slug":"staging","name":"Staging"}])
    );
    assert_eq!(
        api.data("/spaces/spcStaging").await["space"]["name"],
        "Staging"
    );
}

#[tokio::test]
async fn users_list_permissions_switch() {
    let mut cfg = FakeConfig::demo();
    cfg.list_users_includes_permissions = true;
    let fake = FakeSegment::start(cfg).await.unwrap();
    let api = Api::new(&fake);
    let users = api.data("/users").await["users"].clone();
    assert_eq!(users[0]["permissions"][0]["roleId"], "roleWsOwner");
    assert_eq!(users[7]["permissions"], json!([]));
    fake.set_list_users_includes_permissions(false);
    assert!(
        api.data("/users").await["users"][0]
            .get("permissions")
            .is_none()
    );
}

// ---- plan gating & functions -------------------------------------------------------------

#[tokio::test]
async fn plan_gating_answers() {
    let (fake, api) = demo().await;
    fake.set_plan(Plan {
        groups: false,
        spaces: false,
        warehouses: false,
        functions: false,
    });
    let groups_msg =
        "Your plan does not include User Groups. Upgrade to the Business tier to use this feature.";
    for (method, pq) in [
        (Method::GET, "/groups"),
        (Method::GET, "/groups/grpEng"),
        (Method::GET, "/groups/grpEng/users"),
        (Method::POST, "/groups/grpEng/users"),
        (Method::DELETE, "/group/grpEng/users?emails.0=bob@acme.test"),
        (Method::PUT, "/group/grpEng/users"),
        (Method::GET, "/users/usrBob/groups"),
    ] {
        let r = api
            .call(
                method.clone(),
                pq,
                Some(json!({"emails":["bob@acme.test"]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {pq}");
        assert_eq!(
            r.json(),
            json!({"errors":[{"type":"bad-request","message":groups_msg}]})
        );
    }
    assert_eq!(
        fake.workspace().group("grpEng").unwrap().member_count(),
        3,
        "gated writes change nothing"
    );
    let r = api.get("/warehouses").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        json!({"errors":[{"type":"forbidden","message":"Your plan does not include Warehouses."}]})
    );
    let r = api.get("/functions?resourceType=SOURCE").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        json!({"errors":[{"type":"forbidden","message":"This workspace does not have the Functions feature enabled."}]})
    );
    let r = api.get("/spaces").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json(),
        json!({"errors":[{"type":"not-found","message":"This workspace does not have the Spaces feature enabled."}]})
    );
    // Everything else still works.
    assert_eq!(
        api.data("/users").await["users"].as_array().unwrap().len(),
        8
    );
    assert_eq!(
        api.data("/sources").await["sources"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    fake.set_plan(Plan::default());
    assert_eq!(
        api.data("/groups").await["userGroups"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        api.data("/spaces").await["spaces"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn functions_resource_type_validation() {
    let mut cfg = FakeConfig::demo();
    cfg.accepted_function_types = vec!["SOURCE".into(), "DESTINATION".into()];
    let fake = FakeSegment::start(cfg).await.unwrap();
    let api = Api::new(&fake);
    for pq in [
        "/functions",
        "/functions?resourceType=",
        "/functions?resourceType=INSERT_SOURCE",
        "/functions?resourceType=source",
        "/functions?resourceType=BOGUS",
    ] {
        let r = api.get(pq).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{pq}");
        let e = r.error();
        assert_eq!(
            (e["type"].as_str(), e["field"].as_str()),
            (Some("input-validation"), Some("resourceType")),
            "{pq}"
        );
    }
    assert_eq!(
        api.data("/functions?resourceType=DESTINATION").await["functions"][0]["id"],
        "sfnc_slack"
    );
    fake.set_accepted_function_types(
        fakes::segment::FUNCTION_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    assert_eq!(
        api.data("/functions?resourceType=INSERT_SOURCE").await["functions"][0]["id"],
        "sfnc_geo"
    );
}

// ---- rate limits -------------------------------------------------------------------------

#[tokio::test]
async fn write_limit_answers_429_and_changes_nothing() {
    let mut cfg = FakeConfig::demo();
    cfg.write_limit = 3;
    cfg.write_window = Duration::from_secs(30);
    let fake = FakeSegment::start(cfg).await.unwrap();
    let api = Api::new(&fake);
    for (i, email) in ["n1@acme.test", "n2@acme.test", "n3@acme.test"]
        .iter()
        .enumerate()
    {
        let r = api
            .call(
                Method::POST,
                "/invites",
                Some(json!({"invites":[{"email":email}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.header("x-ratelimit-consumed"), Some((i + 1).to_string()));
        assert_eq!(r.header("x-ratelimit-remaining"), Some((2 - i).to_string()));
    }
    // Reads are not limited by the write budget.
    assert_eq!(
        api.data("/invites").await["invites"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let before = fake.workspace();
    let r = api
        .call(
            Method::POST,
            "/invites",
            Some(json!({"invites":[{"email":"n4@acme.test"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let e = r.error();
    assert_eq!(e["type"], "RequestError");
    assert_eq!(e["message"], "Too many requests");
    assert_eq!(e["data"]["remainingPoints"], 0);
    assert_eq!(e["data"]["consumedPoints"], 4);
    let ms = e["data"]["msBeforeNext"].as_u64().unwrap();
    assert!(ms > 20_000 && ms <= 30_000, "{ms}");
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(r.header("x-ratelimit-reset").unwrap().ends_with("GMT"));
    assert_eq!(fake.workspace(), before, "a refused write changes no state");
    assert_eq!(fake.requests().last().unwrap().status, 429);
    // Each write operation has its own budget, as Segment documents.
    let r = api
        .call(Method::DELETE, "/invites?emails.0=n1@acme.test", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-ratelimit-consumed").as_deref(), Some("1"));

    // A new window opens after the reset.
    fake.set_rate_limits(1, Duration::from_millis(1000), None);
    assert_eq!(
        api.call(Method::DELETE, "/invites?emails.0=n3@acme.test", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = api
        .call(Method::DELETE, "/invites?emails.0=n2@acme.test", None)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.error()["data"]["msBeforeNext"].as_u64().unwrap() <= 1000);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        api.call(Method::DELETE, "/invites?emails.0=n2@acme.test", None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn optional_read_limit() {
    let mut cfg = FakeConfig::demo();
    cfg.read_limit = Some((2, Duration::from_secs(60)));
    let fake = FakeSegment::start(cfg).await.unwrap();
    let api = Api::new(&fake);
    assert_eq!(api.get("/users").await.status, StatusCode::OK);
    let r = api.get("/roles").await;
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    let r = api.get("/users").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error()["data"]["consumedPoints"], 3);
    // Writes have their own budget.
    assert_eq!(
        api.call(Method::DELETE, "/invites?emails.0=quinn@partner.test", None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_bucket_read_limit_answers_429_with_a_wait_of_milliseconds() {
    let mut cfg = FakeConfig::demo();
    cfg.read_rate = Some(ReadRate::new(40.0, 3));
    let fake = FakeSegment::start(cfg).await.unwrap();
    let api = Api::new(&fake);
    // The burst goes through at once, each answer saying what is left and when it is whole.
    for left in ["2", "1", "0"] {
        let r = api.get("/roles").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some(left));
        let reset = r.header("x-ratelimit-reset").unwrap();
        assert!(reset.ends_with(" GMT") && reset.len() == 29, "{reset}");
    }
    let r = api.get("/users").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(r.header("x-ratelimit-reset").is_some());
    assert!(
        r.header("x-ratelimit-limit").is_none(),
        "Segment does not document it"
    );
    let data = &r.error()["data"];
    let wait = data["msBeforeNext"].as_u64().unwrap();
    assert!((1..=25).contains(&wait), "one token every 25 ms: {wait}");
    assert_eq!(data["remainingPoints"], 0);
    // Writes keep their own budget.
    assert_eq!(
        api.call(Method::DELETE, "/invites?emails.0=quinn@partner.test", None)
            .await
            .status,
        StatusCode::OK
    );
    // Waiting as long as it says is enough (a refusal takes no token).
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(api.get("/users").await.status, StatusCode::OK);

    // The limit header on request, for clients that can use it.
    fake.set_read_rate(Some(ReadRate {
        limit_header: true,
        ..ReadRate::new(40.0, 3)
    }));
    assert_eq!(
        api.get("/roles")
            .await
            .header("x-ratelimit-limit")
            .as_deref(),
        Some("3")
    );
}

// ---- connections -------------------------------------------------------------------------

/// Sends `GET path` on `stream` and reads one answer: (head, body).
async fn raw_get(stream: &mut tokio::net::TcpStream, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: fake\r\nauthorization: Bearer {TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).into_owned();
                return (head, body);
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed mid-answer");
        got.extend_from_slice(&buf[..n]);
    }
}

async fn at_eof(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
        Ok(Ok(0))
    )
}

#[tokio::test]
async fn connections_stay_open_by_default_and_close_when_asked() {
    for nodelay in [true, false] {
        let mut cfg = FakeConfig::demo();
        cfg.nodelay = nodelay;
        let fake = FakeSegment::start(cfg).await.unwrap();
        let mut conn = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
        // Several answers on one connection, whole, however the server writes them.
        for path in ["/roles", "/users", "/"] {
            let (head, body) = raw_get(&mut conn, path).await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["data"].is_object(), "nodelay {nodelay}: {body}");
        }
        fake.shutdown().await;
    }

    let mut cfg = FakeConfig::demo();
    cfg.keep_alive = false;
    cfg.nodelay = false;
    let fake = FakeSegment::start(cfg).await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let (head, body) = raw_get(&mut conn, "/roles").await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(body.contains("roles"));
    assert!(at_eof(&mut conn).await, "closed after the answer");
}

// ---- fault injection ---------------------------------------------------------------------

#[tokio::test]
async fn fault_rate_limited_status_and_malformed() {
    let (fake, api) = demo().await;
    fake.inject(Fault::on(
        Some("GET"),
        "/users",
        FaultKind::RateLimited {
            ms_before_next: 1234,
        },
        2,
    ));
    for _ in 0..2 {
        let r = api.get("/users?pagination[count]=2").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let e = r.error();
        assert_eq!(e["data"]["msBeforeNext"], 1234);
        assert_eq!(e["data"]["remainingPoints"], 0);
        assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
        assert!(r.header("x-ratelimit-reset").is_some());
    }
    assert_eq!(
        api.get("/users").await.status,
        StatusCode::OK,
        "consumed after 2"
    );
    assert!(fake.pending_faults().is_empty());

    fake.inject(Fault::on_prefix(
        None,
        "/groups/",
        FaultKind::Status {
            status: 503,
            body: r#"{"errors":[{"type":"unavailable","message":"try later"}]}"#.into(),
        },
        1,
    ));
    assert_eq!(
        api.get("/groups").await.status,
        StatusCode::OK,
        "prefix /groups/ does not match /groups"
    );
    let r = api.get("/groups/grpEng").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error()["message"], "try later");

    fake.inject(Fault {
        method: Some("POST".into()),
        path: PathMatch::Exact("/invites".into()),
        kind: FaultKind::MalformedJson,
        times: 1,
    });
    let r = api.get("/invites").await;
    assert_eq!(r.status, StatusCode::OK, "method must match");
    r.json();
    let before = fake.workspace();
    let r = api
        .call(
            Method::POST,
            "/invites",
            Some(json!({"invites":[{"email":"x@acme.test"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text, MALFORMED_BODY);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    assert_eq!(
        fake.workspace(),
        before,
        "malformed answer without handling"
    );
    assert_eq!(fake.requests().last().unwrap().status, 200);
}

#[tokio::test]
async fn fault_truncated_json_closes_mid_body() {
    let (fake, api) = demo().await;
    fake.inject(Fault::on(
        Some("GET"),
        "/users",
        FaultKind::TruncatedJson,
        1,
    ));
    let resp = api
        .http
        .get(format!("{}/users", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let declared = resp.content_length().unwrap();
    let full_len = api.get("/users").await.text.len() as u64;
    assert_eq!(declared, full_len, "Content-Length of the full body");
    let mut resp = resp;
    let mut received = 0u64;
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => received += c.len() as u64,
            Ok(None) => panic!("body completed after {received} bytes"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        received,
        full_len / 2,
        "first half arrives, then the connection closes ({err})"
    );
    // The server keeps serving.
    assert_eq!(api.get("/users").await.status, StatusCode::OK);
}

#[tokio::test]
async fn fault_delay_latency_and_hang() {
    let (fake, api) = demo().await;
    fake.inject(Fault::on(
        None,
        "/roles",
        FaultKind::Delay(Duration::from_millis(300)),
        1,
    ));
    let t = Instant::now();
    assert_eq!(api.get("/roles").await.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(fake.pending_faults().is_empty(), "consumed once");

    fake.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    api.get("/").await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    fake.set_latency(Duration::ZERO);

    fake.inject(Fault::on(Some("GET"), "/users", FaultKind::Hang, 2));
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = quick
        .get(format!("{}/users", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        fake.requests().last().unwrap().status,
        0,
        "no answer recorded"
    );
    // Other paths keep working while one hangs.
    assert_eq!(api.get("/roles").await.status, StatusCode::OK);
    // A second hanging request is released (connection closed) by shutdown.
    let url = format!("{}/users", api.base);
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished());
    fake.shutdown().await;
    let res = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("released by shutdown")
        .unwrap();
    assert!(res.is_err(), "closed without an answer");
}

#[tokio::test]
async fn drop_stops_the_server() {
    let (fake, api) = demo().await;
    let base = api.base.clone();
    drop(fake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .is_err()
    );
}

// ---- invites -----------------------------------------------------------------------------

#[tokio::test]
async fn invites_create_duplicate_and_delete() {
    let (fake, api) = demo().await;
    let r = api.call(Method::POST, "/invites", Some(json!({"invites":[{"email":"new@acme.test","permissions":[{"roleId":"roleSrcRead","resources":[{"id":"srcWeb","type":"SOURCE"}]},{"roleId":"roleEngRead","labels":[{"key":"environment","value":"prod"}]}]}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json(), json!({"data":{"emails":["new@acme.test"]}}));
    let inv = fake.workspace().invite("new@acme.test").unwrap().clone();
    assert_eq!(inv.permissions.len(), 2);
    assert_eq!(inv.permissions[1].labels[0].value, "prod");
    assert_eq!(
        api.data("/invites").await["invites"],
        json!(["pat@acme.test", "quinn@partner.test", "new@acme.test"])
    );

    let dup = json!({"errors":[{"type":"bad-request","message":"One or more email address was already invited to join workspace."}]});
    for email in ["QUINN@partner.test", "alice@ACME.test", "new@acme.test"] {
        let before = fake.workspace();
        let r = api
            .call(
                Method::POST,
                "/invites",
                Some(json!({"invites":[{"email":"fresh@acme.test"},{"email":email}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{email}");
        assert_eq!(r.json(), dup);
        assert_eq!(fake.workspace(), before, "nothing changes");
    }
    for body in [
        json!({}),
        json!({"invites":[]}),
        json!({"invites":[{"email":"not-an-email"}]}),
        json!({"invites":[{"email":"z@acme.test","permissions":[{"roleId":"nope"}]}]}),
    ] {
        let r = api.call(Method::POST, "/invites", Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    let r = api
        .call(Method::DELETE, "/invites?emails.0=ghost@acme.test", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.call(Method::DELETE, "/invites", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error()["field"], "emails");
    let r = api
        .call(
            Method::DELETE,
            "/invites?emails.0=new@acme.test&emails.1=PAT@acme.test",
            None,
        )
        .await;
    assert_eq!(r.json(), json!({"data":{"status":"SUCCESS"}}));
    assert_eq!(
        api.data("/invites").await["invites"],
        json!(["quinn@partner.test"])
    );
    assert_eq!(
        api.data("/groups/grpData/invites").await["emails"],
        json!([]),
        "group invite membership withdrawn"
    );
    assert_eq!(
        api.data("/groups/grpData").await["userGroup"]["memberCount"],
        2
    );
}

#[tokio::test]
async fn array_query_encodings() {
    let encodings = [
        "emails.0=pat@acme.test&emails.1=quinn@partner.test",
        "emails[0]=pat@acme.test&emails[1]=quinn@partner.test",
        "emails%5B0%5D=pat%40acme.test&emails%5B1%5D=quinn%40partner.test",
        "emails=pat@acme.test&emails=quinn@partner.test",
        "emails=%5B%22pat%40acme.test%22%2C%22quinn%40partner.test%22%5D",
        r#"emails=["pat@acme.test","quinn@partner.test"]"#,
    ];
    for q in encodings {
        let (fake, api) = demo().await;
        let r = api
            .call(Method::DELETE, &format!("/invites?{q}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert!(fake.workspace().invites.is_empty(), "{q}");
        let logged = fake.requests().last().unwrap().clone();
        assert_eq!(
            (logged.method.as_str(), logged.path.as_str()),
            ("DELETE", "/invites")
        );
        assert!(
            logged
                .query_pairs()
                .iter()
                .any(|(k, _)| k.starts_with("emails")),
            "{q}"
        );
    }
    for q in [
        "userIds.0=usrBob&userIds.1=usrCarol",
        "userIds[0]=usrBob&userIds[1]=usrCarol",
        "userIds=usrBob&userIds=usrCarol",
        r#"userIds=["usrBob","usrCarol"]"#,
    ] {
        let (fake, api) = demo().await;
        let r = api.call(Method::DELETE, &format!("/users?{q}"), None).await;
        assert_eq!(r.json(), json!({"data":{"status":"SUCCESS"}}), "{q}");
        let ws = fake.workspace();
        assert!(ws.user("usrBob").is_none() && ws.user("usrCarol").is_none());
        assert_eq!(ws.users.len(), 6);
        assert!(
            !ws.group("grpEng")
                .unwrap()
                .member_emails
                .iter()
                .any(|e| e == "bob@acme.test"),
            "memberships removed"
        );
        assert_eq!(api.get("/users/usrBob").await.status, StatusCode::NOT_FOUND);
    }
    let (fake, api) = demo().await;
    for q in ["", "?userIds=", "?userIds=[]", "?userIds.0="] {
        let r = api.call(Method::DELETE, &format!("/users{q}"), None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(r.error()["field"], "userIds");
    }
    let r = api
        .call(
            Method::DELETE,
            "/users?userIds.0=usrBob&userIds.1=usrNobody",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(fake.workspace().user("usrBob").is_some(), "all-or-nothing");
}

// ---- group membership --------------------------------------------------------------------

#[tokio::test]
async fn group_membership_paths() {
    let (fake, api) = demo().await;
    // Plural DELETE and PUT do not exist.
    let r = api
        .call(
            Method::DELETE,
            "/groups/grpEng/users?emails.0=bob@acme.test",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error()["type"], "not-found");
    assert_eq!(
        api.call(
            Method::PUT,
            "/groups/grpEng/users",
            Some(json!({"emails":[]}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // Singular GET/POST do not exist either.
    assert_eq!(
        api.get("/group/grpEng/users").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(fake.workspace().group("grpEng").unwrap().member_count(), 3);

    // Add a user and a pending invite (case-insensitive; stored with the canonical email).
    let r = api
        .call(
            Method::POST,
            "/groups/grpContractors/users",
            Some(json!({"emails":["GRACE@acme.test","quinn@partner.test"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let g = r.json()["data"]["userGroup"].clone();
    assert_eq!(
        (g["id"].as_str(), g["memberCount"].as_u64()),
        (Some("grpContractors"), Some(2))
    );
    assert_eq!(
        api.data("/groups/grpContractors/users").await["users"],
        json!([{"id":"usrGrace","name":"Grace Hopper","email":"grace@acme.test"}])
    );
    assert_eq!(
        api.data("/groups/grpContractors/invites").await["emails"],
        json!(["quinn@partner.test"])
    );
    assert_eq!(
        api.data("/users/usrGrace/groups").await["groups"],
        json!([{"id":"grpContractors","name":"Contractors"}])
    );
    // Adding again does not duplicate.
    let r = api
        .call(
            Method::POST,
            "/groups/grpContractors/users",
            Some(json!({"emails":["grace@acme.test"]})),
        )
        .await;
    assert_eq!(r.json()["data"]["userGroup"]["memberCount"], 2);
    // Unknown email: 404, nothing changes.
    let r = api
        .call(
            Method::POST,
            "/groups/grpContractors/users",
            Some(json!({"emails":["heidi@acme.test","ghost@acme.test"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        fake.workspace()
            .group("grpContractors")
            .unwrap()
            .member_count(),
        2
    );
    let r = api
        .call(
            Method::POST,
            "/groups/grpContractors/users",
            Some(json!({"emails":[]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error()["field"], "emails");

    // Singular DELETE removes users and invites.
    let r = api
        .call(
            Method::DELETE,
            "/group/grpContractors/users?emails.0=grace@acme.test&emails.1=quinn@partner.test",
            None,
        )
        .await;
    assert_eq!(r.json(), json!({"data":{"status":"SUCCESS"}}));
    assert_eq!(
        api.data("/groups/grpContractors").await["userGroup"]["memberCount"],
        0
    );
    assert_eq!(
        api.call(
            Method::DELETE,
            "/group/grpNope/users?emails.0=grace@acme.test",
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(Method::DELETE, "/group/grpEng/users", None)
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Singular PUT replaces the member set.
    let r = api
        .call(
            Method::PUT,
            "/group/grpEng/users",
            Some(json!({"emails":["alice@acme.test","pat@acme.test"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["data"]["userGroup"]["memberCount"], 2);
    let g = fake.workspace().group("grpEng").unwrap().clone();
    assert_eq!(g.member_emails, ["alice@acme.test"]);
    assert_eq!(g.invite_emails, ["pat@acme.test"]);
    let r = api
        .call(
            Method::PUT,
            "/group/grpEng/users",
            Some(json!({"emails":[]})),
        )
        .await;
    assert_eq!(
        r.json()["data"]["userGroup"]["memberCount"],
        0,
        "empty list clears"
    );
}

#[tokio::test]
async fn group_create_rename_delete() {
    let (fake, api) = demo().await;
    let r = api
        .call(Method::POST, "/groups", Some(json!({"name":"Auditors"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let g = r.json()["data"]["userGroup"].clone();
    let id = g["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 22);
    assert_eq!(
        g,
        json!({"id":id,"name":"Auditors","memberCount":0,"permissions":[]})
    );
    assert_eq!(
        api.call(Method::POST, "/groups", Some(json!({"name":""})))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = api
        .call(
            Method::PATCH,
            &format!("/groups/{id}"),
            Some(json!({"name":"External Auditors"})),
        )
        .await;
    assert_eq!(r.json()["data"]["userGroup"]["name"], "External Auditors");
    let r = api
        .call(Method::DELETE, &format!("/groups/{id}"), None)
        .await;
    assert_eq!(r.json(), json!({"data":{"status":"SUCCESS"}}));
    assert_eq!(
        api.get(&format!("/groups/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(fake.workspace().groups.len(), 4);
}

// ---- permissions -------------------------------------------------------------------------

#[tokio::test]
async fn permissions_add_merges_and_replace_replaces() {
    let (fake, api) = demo().await;
    // POST to a user: merge into the same role, append a new role; answer = the touched permissions.
    let r = api
        .call(
            Method::POST,
            "/users/usrBob/permissions",
            Some(json!({"permissions":[
                {"roleId":"roleSrcAdmin","resources":[{"id":"srcWeb","type":"SOURCE"},{"id":"srcServer","type":"SOURCE"}]},
                {"roleId":"roleEngRead","resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"key":"environment","value":"prod","description":"Prod"}]}]}
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let out = r.json()["data"]["permissions"].clone();
    assert_eq!(out.as_array().unwrap().len(), 2);
    assert_eq!(out[0]["roleName"], "Source Admin");
    assert_eq!(
        (out[0]["subjectId"].as_str(), out[0]["subjectType"].as_str()),
        (Some("usrBob"), Some("user"))
    );
    assert!(out[0]["policyId"].is_string());
    let ids: Vec<_> = out[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["srcWeb", "srcIos", "srcServer"],
        "identical resource not duplicated"
    );

    let bob = api.data("/users/usrBob").await["user"]["permissions"].clone();
    let roles: Vec<_> = bob
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["roleId"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["roleSrcAdmin", "roleFnRead", "roleEngRead"]);
    assert_eq!(
        bob[2]["resources"][0]["labels"],
        json!([{"key":"environment","value":"prod","description":"Prod"}]),
        "labels kept exactly"
    );

    // PUT replaces the whole set; labels sent are stored exactly.
    let r = api
        .call(
            Method::PUT,
            "/users/usrErin/permissions",
            Some(json!({"permissions":[
                {"roleId":"roleSrcAdmin","resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"key":"environment","value":"prod","description":"Production sources"},{"key":"team","value":"web"}]}]}
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let out = r.json()["data"]["permissions"].clone();
    assert_eq!(out.as_array().unwrap().len(), 1);
    let erin = api.data("/users/usrErin").await["user"]["permissions"].clone();
    assert_eq!(
        erin,
        json!([{"roleId":"roleSrcAdmin","roleName":"Source Admin","labels":[],"resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"key":"environment","value":"prod","description":"Production sources"},{"key":"team","value":"web"}]}]}])
    );
    // Replace with nothing strips all access.
    let r = api
        .call(
            Method::PUT,
            "/users/usrFrank/permissions",
            Some(json!({"permissions":[]})),
        )
        .await;
    assert_eq!(r.json()["data"]["permissions"], json!([]));
    assert_eq!(
        api.data("/users/usrFrank").await["user"]["permissions"],
        json!([])
    );

    // Groups: POST answers the whole updated set, PUT replaces.
    let r = api.call(Method::POST, "/groups/grpData/permissions", Some(json!({"permissions":[{"roleId":"roleEngRead","resources":[{"id":"spcProd","type":"SPACE"}]}]}))).await;
    let out = r.json()["data"]["permissions"].clone();
    assert_eq!(out.as_array().unwrap().len(), 2);
    assert_eq!(out[1]["subjectType"], "group");
    assert_eq!(
        out[1]["resources"],
        json!([{"id":"spcStaging","type":"SPACE","labels":[]},{"id":"spcProd","type":"SPACE","labels":[]}])
    );
    let r = api.call(Method::PUT, "/groups/grpData/permissions", Some(json!({"permissions":[{"roleId":"roleWhAdmin","resources":[{"id":"whBigQuery","type":"WAREHOUSE"}]}]}))).await;
    assert_eq!(r.json()["data"]["permissions"].as_array().unwrap().len(), 1);
    let g = api.data("/groups/grpData").await["userGroup"].clone();
    assert_eq!(
        g["permissions"],
        json!([{"roleId":"roleWhAdmin","roleName":"Warehouse Destination Admin","labels":[],"resources":[{"id":"whBigQuery","type":"WAREHOUSE","labels":[]}]}])
    );
    assert_eq!(
        fake.workspace().group("grpData").unwrap().permissions.len(),
        1
    );
}

#[tokio::test]
async fn permission_validation_errors() {
    let (fake, api) = demo().await;
    let before = fake.workspace();
    let cases = [
        (
            json!({"permissions":[{"roleId":"roleNope","resources":[{"id":"wkspAcme01","type":"WORKSPACE"}]}]}),
            "permissions.roleId",
        ),
        (
            json!({"permissions":[{"roleId":"roleSrcAdmin","resources":[{"id":"srcWeb","type":"DESTINATION"}]}]}),
            "permissions.resources.type",
        ),
        (
            json!({"permissions":[{"roleId":"roleSrcAdmin","resources":[{"id":"srcNope","type":"SOURCE"}]}]}),
            "permissions.resources.id",
        ),
        (
            json!({"permissions":[{"roleId":"roleWhAdmin","resources":[{"id":"whNope","type":"WAREHOUSE"}]}]}),
            "permissions.resources.id",
        ),
        (
            json!({"permissions":[{"roleId":"roleFnAdmin","resources":[{"id":"sfnc_nope","type":"FUNCTION"}]}]}),
            "permissions.resources.id",
        ),
        (
            json!({"permissions":[{"roleId":"roleEngAdmin","resources":[{"id":"spcNope","type":"SPACE"}]}]}),
            "permissions.resources.id",
        ),
        (json!({"nothing":true}), "permissions"),
    ];
    for (body, field) in cases {
        for (method, path) in [
            (Method::POST, "/users/usrBob/permissions"),
            (Method::PUT, "/users/usrBob/permissions"),
            (Method::POST, "/groups/grpEng/permissions"),
            (Method::PUT, "/groups/grpEng/permissions"),
        ] {
            let r = api.call(method.clone(), path, Some(body.clone())).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} {body}"
            );
            let e = r.error();
            assert_eq!(
                (e["type"].as_str(), e["field"].as_str()),
                (Some("input-validation"), Some(field)),
                "{body}"
            );
        }
    }
    assert_eq!(fake.workspace(), before);
}

// ---- generated workspaces ----------------------------------------------------------------

#[tokio::test]
async fn generated_workspace_is_served_and_deterministic() {
    let spec = GenSpec {
        users: 5000,
        groups: 300,
        invites: 40,
        sources: 30,
        warehouses: 3,
        functions: 12,
        spaces: 2,
    };
    let ws = Workspace::generate(2024, spec);
    assert_eq!(ws, Workspace::generate(2024, spec));
    let fake = FakeSegment::start(FakeConfig::new("gen-token", ws.clone()))
        .await
        .unwrap();
    let api = Api {
        token: Some("gen-token".into()),
        ..Api::new(&fake)
    };
    let (users, pages) = walk(&api, "/users", "users", |c| match c {
        None => "pagination[count]=1000".into(),
        Some(c) => format!(
            "pagination[count]=1000&pagination[cursor]={}",
            c.replace('=', "%3D")
        ),
    })
    .await;
    assert_eq!(pages, 5);
    assert_eq!(users.len(), 5000);
    assert_eq!(users[4321]["id"], json!(ws.users[4321].id));
    let (groups, _) = walk(&api, "/groups", "userGroups", |c| match c {
        None => "pagination.count=200".into(),
        Some(c) => format!("pagination.count=200&pagination.cursor={c}"),
    })
    .await;
    assert_eq!(groups.len(), 300);
    let g = &ws.groups[17];
    assert_eq!(groups[17]["memberCount"], json!(g.member_count()));
    let members = api
        .data(&format!("/groups/{}/users?pagination[count]=100", g.id))
        .await;
    assert_eq!(
        members["users"].as_array().unwrap().len(),
        g.member_emails.len()
    );
    let u = &ws.users[99];
    let got = api.data(&format!("/users/{}", u.id)).await["user"].clone();
    assert_eq!(
        got["permissions"],
        serde_json::to_value(&u.permissions).unwrap()
    );
}

#[tokio::test]
async fn binary_prints_base_url_and_serves() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_segment-fake"))
        .args([
            "--token",
            "bin-token",
            "--no-spaces",
            "--generate-seed",
            "5",
            "--users",
            "12",
            "--groups",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("segment-fake listening on http://127.0.0.1:"),
        "{first}"
    );
    assert!(first.ends_with("(token: bin-token)"), "{first}");
    let base = first.split_whitespace().nth(3).unwrap().to_string();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/users"))
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["users"].as_array().unwrap().len(), 12);
    let r = http
        .get(format!("{base}/spaces"))
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    child.kill().await.unwrap();
}
