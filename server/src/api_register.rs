//! Register resources: cash transactions (idempotent, group-committed, with chained
//! signed receipts) and the company's product catalogue (with RVE delta sync).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
/// The bodies of these endpoints, defined in core (see `tillgate_core::wire`); the
/// product as `PUT /products/{id}` takes it is core's `Product`, re-exported here under
/// its schema name.
pub use tillgate_core::Product as ProductInput;
pub use tillgate_core::wire::{ProductList, ProductOut, TransactionList, TransactionOut};
use tillgate_core::{
    FieldError, Rve, Transaction, canonical_bytes, transaction_hash, validate_product,
    validate_transaction,
};

use crate::api_activation::rfc3339;
use crate::api_admin::limit;
use crate::auth::{Authenticated, Register, require_usable};
use crate::db::{Committed, NewTx, ProductRow, Refusal, StaffKey, TxRow};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::prefix::UrlTokenContext;
use crate::state::AppState;

/// Builds the API form of a stored transaction.
pub fn tx_out(r: TxRow, production_number: &str) -> AppResult<TransactionOut> {
    let transaction: Transaction = serde_json::from_str(&r.body)
        .map_err(|e| AppError::internal(format!("stored transaction is not valid: {e}")))?;
    tx_out_parsed(r, production_number, transaction)
}

/// [`tx_out`] when the transaction is at hand already (it is what `r.body` holds).
fn tx_out_parsed(
    r: TxRow,
    production_number: &str,
    transaction: Transaction,
) -> AppResult<TransactionOut> {
    Ok(TransactionOut {
        id: r.id,
        sequence: u64::try_from(r.seq)
            .map_err(|_| AppError::internal(format!("negative sequence {}", r.seq)))?,
        created_at: rfc3339(r.created_at),
        production_number: production_number.to_owned(),
        transaction,
        txh: r.txh,
        receipt: r.receipt,
        extra: serde_json::Map::new(),
    })
}

fn idempotency_key(headers: &HeaderMap) -> AppResult<String> {
    let v = headers.get(&crate::header_names::IDEMPOTENCY_KEY).ok_or_else(|| {
        AppError::bad_request(
            "missing_idempotency_key",
            "send an Idempotency-Key header (1–64 visible ASCII characters), the same on every retry",
        )
    })?;
    let s = v.to_str().unwrap_or("");
    if !tillgate_core::wire::is_idempotency_key(s, 1) {
        return Err(AppError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1–64 visible ASCII characters",
        ));
    }
    Ok(s.to_owned())
}

fn created(out: TransactionOut, replayed: bool) -> Response {
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

fn same_or_conflict(existing: TxRow, txh: &str, pn: &str) -> AppResult<Response> {
    if existing.txh != txh {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different transaction",
        ));
    }
    Ok(created(tx_out(existing, pn)?, true))
}

/// `POST /transactions`: stores a cash transaction once per `Idempotency-Key` and returns
/// it with its sequence number and signed receipt. Retries return the same result
/// (header `Idempotent-Replayed: true`). Acknowledged only after the commit.
#[utoipa::path(post, path = "/transactions", tag = "register",
    request_body(content = crate::openapi::TransactionDoc, content_type = "application/json"),
    params(("Idempotency-Key" = String, Header, description = "client-chosen key (1–64 visible ASCII characters), the same on every retry", min_length = 1, max_length = 64, pattern = "^[!-~]+$")),
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 201, body = TransactionOut),
    ))]
pub async fn create_transaction(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<ApiJson<Transaction>, AppError>,
) -> AppResult<Response> {
    let a = &auth.activation;
    // A register that may not sell (revoked, expired...) still gets back a sale it stored
    // before (an answer lost on the way), so its outbox learns what the server holds; any
    // other request gets the refusal, also a key naming another sale (nothing is told).
    if let Err(refusal) = require_usable(a, state.now()) {
        let (Ok(key), Ok(ApiJson(tx))) = (idempotency_key(&headers), body) else {
            return Err(refusal);
        };
        return match stored_before(&state, &a.id, &key, &tx).await? {
            Some(row) => Ok(replayed(&state, row, &a.production_number)?),
            None => Err(refusal),
        };
    }
    let ApiJson(tx) = body?;
    let key = idempotency_key(&headers)?;
    // A retry is recognised by the writer (one query per batch, not per request). One
    // that today's checks refuse is looked up first: a sale stored before (its rules made
    // stricter by an upgrade since) is answered, so the till's outbox learns it is stored
    // instead of taking the 400 as a refusal.
    if let Err(e) = check_new_sale(&state, &a.id, &tx).await {
        return match stored_before(&state, &a.id, &key, &tx).await? {
            Some(row) => Ok(replayed(&state, row, &a.production_number)?),
            None => Err(e),
        };
    }
    let txh = transaction_hash(&tx);
    let body = String::from_utf8(canonical_bytes(&tx))
        .map_err(|_| AppError::internal("canonical bytes are not UTF-8"))?;
    let committed = state
        .commit(NewTx {
            activation_id: a.id.clone(),
            production_number: a.production_number.clone(),
            idempotency_key: key.clone(),
            body,
            txh: txh.clone(),
            tx_type: tx.kind.as_str().to_owned(),
            total: tx.total,
            currency: tx.currency.clone(),
            key_hash: auth.key_hash.as_ref().map(|h| h.to_hex()),
            staff: staff_key(&auth),
        })
        .await?;
    match committed {
        Committed::New(row) => Ok(created(
            tx_out_parsed(row, &a.production_number, tx)?,
            false,
        )),
        Committed::Existing(row) => same_or_conflict(row, &txh, &a.production_number),
        // Refused at the commit (revoked or renewed through another server meanwhile): a
        // sale stored before is still answered, as above.
        Committed::Refused(refusal) => {
            let err = refused(&state, &a.id, refusal);
            match stored_before(&state, &a.id, &key, &tx).await? {
                Some(row) => Ok(replayed(&state, row, &a.production_number)?),
                None => Err(err),
            }
        }
    }
}

/// The answer to a retry of a sale stored before, found outside the writer (a register
/// that may no longer sell, a sale today's checks refuse, a refusal at the commit):
/// counted with the writer's replays.
fn replayed(state: &AppState, row: TxRow, production_number: &str) -> AppResult<Response> {
    state
        .metrics
        .transactions_replayed
        .fetch_add(1, Ordering::Relaxed);
    Ok(created(tx_out(row, production_number)?, true))
}

/// The staff login and key a write came with, checked again at its commit.
fn staff_key(auth: &Authenticated) -> Option<StaffKey> {
    Some(StaffKey {
        login: auth.staff_login.clone()?,
        public_key: auth.staff_public_key.clone()?,
    })
}

/// Core's checks of a sale, and that its `reference` (a refund's sale) is an earlier
/// transaction of register `activation_id`.
async fn check_new_sale(state: &AppState, activation_id: &str, tx: &Transaction) -> AppResult<()> {
    validate_transaction(tx)?;
    if let Some(reference) = &tx.reference {
        let known = state
            .store
            .tx(reference)
            .await?
            .is_some_and(|r| r.activation_id == activation_id);
        if !known {
            return Err(AppError::fields(
                "invalid_transaction",
                "the referenced transaction is unknown",
                vec![FieldError {
                    field: "reference".into(),
                    code: "unknown_reference".into(),
                    message: "must be the id of an earlier transaction of this register".into(),
                }],
            ));
        }
    }
    Ok(())
}

/// The sale this register stored under `key`, if it is this very transaction.
async fn stored_before(
    state: &AppState,
    activation_id: &str,
    key: &str,
    tx: &Transaction,
) -> AppResult<Option<TxRow>> {
    Ok(state
        .store
        .tx_by_idempotency_key(activation_id, key)
        .await?
        .filter(|row| row.txh == transaction_hash(tx)))
}

/// The answer to a write of registration `activation_id` refused by the database
/// ([`Refusal`]). The cached view that let it through is stale: the registration's
/// entries are dropped, so its next request is answered from the database at
/// authentication.
fn refused(state: &AppState, activation_id: &str, refusal: Refusal) -> AppError {
    state.key_cache.forget(|_, a| a.id != activation_id);
    match refusal {
        Refusal::NotApproved(status) => crate::auth::not_approved(&status),
        Refusal::KeyReplaced => crate::auth::key_replaced(),
        Refusal::StaffLoginGone => crate::auth::staff_login_unknown(),
    }
}

/// Query of list endpoints.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TxListQuery {
    /// Only what changed after this RVE (`YYYYMMDDHHmmSS`, UTC); overrides the `$R` of a
    /// URL-path prefix.
    #[param(pattern = "^[0-9]{14}$", example = "20240101000000")]
    pub rve: Option<String>,
    /// Only sequence numbers above this.
    #[param(minimum = 0)]
    pub after_sequence: Option<i64>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

fn since(query: Option<&str>, ctx: Option<&UrlTokenContext>) -> AppResult<i64> {
    let rve = match query {
        Some(s) => Some(Rve::parse(s)?),
        None => ctx.and_then(|c| c.rve),
    };
    Ok(rve.map_or(i64::MIN, Rve::unix_seconds))
}

/// `GET /transactions`: the register's transactions (delta by RVE or sequence).
#[utoipa::path(get, path = "/transactions", tag = "register", params(TxListQuery),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, body = TransactionList)))]
pub async fn list_transactions(
    State(state): State<AppState>,
    Register(auth): Register,
    ctx: Option<axum::Extension<UrlTokenContext>>,
    ApiQuery(q): ApiQuery<TxListQuery>,
) -> AppResult<Json<TransactionList>> {
    let since = since(q.rve.as_deref(), ctx.as_ref().map(|c| &c.0))?;
    let limit = limit(q.limit, 100, 1000)?;
    let page = state
        .store
        .list_txs(
            &auth.activation.id,
            q.after_sequence.unwrap_or(0),
            since,
            limit,
        )
        .await?;
    let rve = Rve::from_unix(page.rve)?.to_string();
    let rows = page.rows;
    let full = rows.len() as i64 == limit;
    let next = if full {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| tx_out(r, &auth.activation.production_number))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Json(TransactionList {
        rve,
        items,
        next_after_sequence: next,
    }))
}

/// `GET /transactions/{id}`: one of the register's transactions.
#[utoipa::path(get, path = "/transactions/{id}", tag = "register",
    params(("id" = String, Path)),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, body = TransactionOut)))]
pub async fn get_transaction(
    State(state): State<AppState>,
    Register(auth): Register,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<TransactionOut>> {
    // Another register's transaction is "not found", not "forbidden": ids do not leak.
    let row = state
        .store
        .tx(&id)
        .await?
        .filter(|r| r.activation_id == auth.activation.id)
        .ok_or_else(|| AppError::not_found("transaction_not_found", "no such transaction"))?;
    Ok(Json(tx_out(row, &auth.activation.production_number)?))
}

// ---- products -----------------------------------------------------------------------

fn product_out(r: ProductRow) -> AppResult<ProductOut> {
    Ok(ProductOut {
        id: r.id,
        product: serde_json::from_str(&r.body)
            .map_err(|e| AppError::internal(format!("stored product is not valid: {e}")))?,
        updated_at: rfc3339(r.updated_at),
        extra: serde_json::Map::new(),
    })
}

/// `PUT /products/{id}`: creates (201) or replaces (200) a product of the register's company.
#[utoipa::path(put, path = "/products/{id}", tag = "register", params(("id" = String, Path, description = "1–64 characters of A-Z a-z 0-9 - _ .", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")),
    request_body = ProductInput,
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, body = ProductOut), (status = 201, body = ProductOut)))]
pub async fn put_product(
    State(state): State<AppState>,
    Register(auth): Register,
    ApiPath(id): ApiPath<String>,
    ApiJson(p): ApiJson<ProductInput>,
) -> AppResult<(StatusCode, Json<ProductOut>)> {
    state.refuse_if_schema_newer().await?;
    validate_product(&id, &p)?;
    let mut row = ProductRow {
        corporate_id: auth.activation.corporate_id.clone(),
        id,
        body: serde_json::to_string(&p).map_err(|e| AppError::internal(e.to_string()))?,
        updated_at: state.now(),
        rve: 0,
    };
    let key_hash = auth.key_hash.as_ref().map(|h| h.to_hex());
    let (created, rve) = state
        .store
        .upsert_product(
            &row,
            &auth.activation.id,
            key_hash.as_deref(),
            staff_key(&auth).as_ref(),
        )
        .await?
        .map_err(|refusal| {
            state
                .metrics
                .product_changes_refused
                .fetch_add(1, Ordering::Relaxed);
            refused(&state, &auth.activation.id, refusal)
        })?;
    row.rve = rve;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(product_out(row)?)))
}

/// `GET /products/{id}`.
#[utoipa::path(get, path = "/products/{id}", tag = "register", params(("id" = String, Path, description = "1–64 characters of A-Z a-z 0-9 - _ .", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, body = ProductOut)))]
pub async fn get_product(
    State(state): State<AppState>,
    Register(auth): Register,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<ProductOut>> {
    let row = state
        .store
        .product(&auth.activation.corporate_id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("product_not_found", "no such product"))?;
    Ok(Json(product_out(row)?))
}

/// Query of `GET /products`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Only what changed after this RVE (`YYYYMMDDHHmmSS`, UTC); overrides the `$R` of a
    /// URL-path prefix.
    #[param(pattern = "^[0-9]{14}$", example = "20240101000000")]
    pub rve: Option<String>,
}

/// Most products returned by one delta; `more` says another page follows.
const PRODUCT_PAGE: i64 = 1_000;

/// `GET /products`: the company's products changed after the RVE (all without one), a
/// page at a time.
///
/// The RVE is compared with each product's version (see
/// [`crate::db::Store::upsert_product`]), not with the time of the change, so a change
/// that commits late, or on a replica whose clock is behind, is not skipped; the answer's
/// `rve` is the last version sent.
#[utoipa::path(get, path = "/products", tag = "register", params(ProductListQuery),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, body = ProductList)))]
pub async fn list_products(
    State(state): State<AppState>,
    Register(auth): Register,
    ctx: Option<axum::Extension<UrlTokenContext>>,
    ApiQuery(q): ApiQuery<ProductListQuery>,
) -> AppResult<Json<ProductList>> {
    let since = since(q.rve.as_deref(), ctx.as_ref().map(|c| &c.0))?;
    let page = state
        .store
        .product_changes(&auth.activation.corporate_id, since, PRODUCT_PAGE)
        .await?;
    let rve = Rve::from_unix(page.rve.max(0))?.to_string();
    let items = page
        .rows
        .into_iter()
        .map(product_out)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Json(ProductList {
        rve,
        items,
        more: page.more,
    }))
}
