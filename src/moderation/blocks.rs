//! Blocks: one person's list of people they never want to meet. The server never seats two
//! users where one has blocked the other (`conflict_in_room`, called by the join rule); the web
//! app also hides a blocked person's chat lines and media for the blocker.
//! `GET /api/me/blocks`, `PUT|DELETE /api/me/blocks/:userId`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::auth::{AuthUser, User, UserPublic};
use crate::db::schema::{room_participants, user_blocks, users};
use crate::db::{self, DbConnection, DbError, write_transaction};
use crate::error::{ApiError, ErrorCode};
use crate::http::allow;
use crate::ids::{RoomId, UserId};
use crate::state::AppState;

/// How many people one user may keep blocked.
pub const MAX_BLOCKS: i64 = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/me/blocks")
            .route(web::get().to(list_blocks))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/me/blocks/{user_id}")
            .route(web::put().to(put_block))
            .route(web::delete().to(delete_block))
            .default_service(allow("PUT, DELETE")),
    );
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot block yourself")]
    SelfBlock,
    #[error("no such user")]
    UnknownUser,
    #[error("too many blocks")]
    TooMany,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for BlockError {
    fn from(err: diesel::result::Error) -> Self {
        BlockError::Db(err.into())
    }
}

impl From<BlockError> for ApiError {
    fn from(err: BlockError) -> Self {
        match err {
            BlockError::SelfBlock => {
                ApiError::unprocessable(ErrorCode::InvalidTarget, "You cannot block yourself")
            }
            BlockError::UnknownUser => ApiError::not_found(ErrorCode::NotFound, "No such user"),
            BlockError::TooMany => ApiError::conflict(
                ErrorCode::TooManyBlocks,
                format!(
                    "You have blocked {MAX_BLOCKS} people, the most one may; unblock someone first"
                ),
            ),
            BlockError::Db(e) => e.into(),
        }
    }
}

/// One entry of `GET /api/me/blocks`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockView {
    pub user: UserPublic,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// Whom `blocker` has blocked, newest first.
pub fn list(conn: &mut DbConnection, blocker: UserId) -> QueryResult<Vec<BlockView>> {
    let rows: Vec<(NaiveDateTime, User)> = user_blocks::table
        .inner_join(users::table.on(users::id.eq(user_blocks::blocked_id)))
        .filter(user_blocks::blocker_id.eq(blocker.to_string()))
        .order((
            user_blocks::created_at.desc(),
            user_blocks::blocked_id.desc(),
        ))
        .select((user_blocks::created_at, User::as_select()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(at, user)| BlockView {
            user: user.public(),
            created_at: at.and_utc(),
        })
        .collect())
}

/// `blocker` blocks `blocked` (again: nothing changes).
pub fn block(conn: &mut DbConnection, blocker: UserId, blocked: UserId) -> Result<(), BlockError> {
    if blocker == blocked {
        return Err(BlockError::SelfBlock);
    }
    write_transaction(conn, |conn| {
        let exists: i64 = users::table
            .filter(users::id.eq(blocked.to_string()))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            return Err(BlockError::UnknownUser);
        }
        let mine = user_blocks::table.filter(user_blocks::blocker_id.eq(blocker.to_string()));
        let already: i64 = mine
            .clone()
            .filter(user_blocks::blocked_id.eq(blocked.to_string()))
            .count()
            .get_result(conn)?;
        if already > 0 {
            return Ok(());
        }
        let kept: i64 = mine.count().get_result(conn)?;
        if kept >= MAX_BLOCKS {
            return Err(BlockError::TooMany);
        }
        let inserted = diesel::insert_into(user_blocks::table)
            .values((
                user_blocks::blocker_id.eq(blocker.to_string()),
                user_blocks::blocked_id.eq(blocked.to_string()),
                user_blocks::created_at.eq(db::now()),
            ))
            .execute(conn);
        match inserted {
            // The same block, put twice at once: it is there, which is what was asked.
            Err(e) if db::is_unique_violation(&e) => Ok(()),
            other => other.map(|_| ()).map_err(BlockError::from),
        }
    })
}

/// `blocker` lifts a block (none: nothing changes).
pub fn unblock(conn: &mut DbConnection, blocker: UserId, blocked: UserId) -> QueryResult<()> {
    diesel::delete(
        user_blocks::table
            .filter(user_blocks::blocker_id.eq(blocker.to_string()))
            .filter(user_blocks::blocked_id.eq(blocked.to_string())),
    )
    .execute(conn)
    .map(|_| ())
}

/// True when someone actively seated in the room has blocked `user_id`, or `user_id` has
/// blocked someone seated there. The join rule refuses such a seat (`BLOCKED`).
pub fn conflict_in_room(
    conn: &mut DbConnection,
    room_id: RoomId,
    user_id: UserId,
) -> QueryResult<bool> {
    let seated = || {
        room_participants::table
            .filter(room_participants::room_id.eq(room_id.to_string()))
            .filter(room_participants::left_at.is_null())
            .filter(room_participants::is_kicked.eq(false))
            .filter(room_participants::user_id.ne(user_id.to_string()))
            .select(room_participants::user_id)
    };
    let me = user_id.to_string();
    let found: i64 = user_blocks::table
        .filter(
            user_blocks::blocker_id
                .eq(&me)
                .and(user_blocks::blocked_id.eq_any(seated()))
                .or(user_blocks::blocked_id
                    .eq(&me)
                    .and(user_blocks::blocker_id.eq_any(seated()))),
        )
        .count()
        .get_result(conn)?;
    Ok(found > 0)
}

async fn list_blocks(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let me = user.0.user_id();
    let blocks = db::run(&state.pool, move |conn| {
        list(conn, me).map_err(DbError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "blocks": blocks })))
}

async fn put_block(
    state: web::Data<AppState>,
    path: web::Path<UserId>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (me, them) = (user.0.user_id(), path.into_inner());
    db::run(&state.pool, move |conn| block(conn, me, them)).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

async fn delete_block(
    state: web::Data<AppState>,
    path: web::Path<UserId>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (me, them) = (user.0.user_id(), path.into_inner());
    db::run(&state.pool, move |conn| {
        unblock(conn, me, them).map_err(DbError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
