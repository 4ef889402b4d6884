//! The two databases the store runs on, behind one small interface: SQLite (embedded, one
//! instance) and PostgreSQL (shared by several instances).
//!
//! Queries are written once, in the SQL both accept, with `$1`-style parameters (PostgreSQL's;
//! they become `?1` for SQLite). Parameters and columns travel as [`Value`]s, so the store's
//! code does not depend on either driver's type mapping.

use std::cell::{Cell, RefCell};

use postgres::types::{private::BytesMut, IsNull, ToSql, Type};

use super::StoreError;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (SQLite INTEGER, PostgreSQL BIGINT).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (SQLite BLOB, PostgreSQL BYTEA).
    Blob(Vec<u8>),
}

/// Parameters as `&[Value]`: `values![a, b]`.
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::db::Value::from($value)),*][..]
    };
}
pub(super) use values;

macro_rules! value_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(v as i64)
            }
        }
    )*};
}
value_from_int!(i64, i32, u32, u64, usize);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v as i64)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Value {
        Value::Blob(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Clone + Into<Value>> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Value {
        v.clone().map_or(Value::Null, Into::into)
    }
}

/// A column value read back as a Rust type.
pub trait FromValue: Sized {
    /// The value, or why it is not one.
    fn from_value(value: Value) -> Result<Self, String>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<$t, String> {
                match value {
                    Value::Int(v) => <$t>::try_from(v).map_err(|e| e.to_string()),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u32, u64);

impl FromValue for bool {
    fn from_value(value: Value) -> Result<bool, String> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<String, String> {
        match value {
            Value::Text(v) => Ok(v),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Vec<u8>, String> {
        match value {
            Value::Blob(v) => Ok(v),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Option<T>, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `i` as a `T`; a mismatch is a damaged row.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let value = self.0.get(i).cloned().unwrap_or(Value::Null);
        T::from_value(value).map_err(|message| StoreError::Damaged {
            what: "row",
            message: format!("column {i}: {message}"),
        })
    }
}

/// What runs queries: the database itself or a transaction on it.
pub trait Sql {
    /// Runs a statement; the rows it changed.
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query; its rows.
    fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// The first row, if any.
    fn query_opt(&self, sql: &str, args: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }
}

/// A connection to one of the two databases.
pub enum Db {
    /// SQLite.
    Sqlite(rusqlite::Connection),
    /// PostgreSQL (boxed: the client and its statement cache are large).
    Postgres(Box<Pg>),
}

/// A PostgreSQL connection and its prepared statements (each query is parsed once per
/// connection, then only bound and run: one round trip instead of two). The client needs
/// `&mut`; the store is used from one thread at a time.
///
/// A connection the server or the network broke is replaced on its next use outside a
/// transaction (a transaction's statements never move to another connection: it fails, rolls
/// back, and the caller tries it again), so a store outlives a database restart.
pub struct Pg {
    client: RefCell<postgres::Client>,
    statements: RefCell<std::collections::HashMap<String, postgres::Statement>>,
    /// How to connect again.
    url: String,
    settings: super::PostgresSettings,
    /// Inside `BEGIN`: the connection must not be replaced.
    in_transaction: Cell<bool>,
    /// A statement failed in a way that leaves the connection unusable.
    broken: Cell<bool>,
}

impl Pg {
    /// Wraps a client connected to `url` with `settings` (used again to reconnect).
    pub fn new(client: postgres::Client, url: &str, settings: &super::PostgresSettings) -> Box<Pg> {
        Box::new(Pg {
            client: RefCell::new(client),
            statements: RefCell::default(),
            url: url.to_string(),
            settings: settings.clone(),
            in_transaction: Cell::new(false),
            broken: Cell::new(false),
        })
    }

    /// The client, connected again first if its connection broke (outside a transaction).
    fn client(&self) -> Result<std::cell::RefMut<'_, postgres::Client>, StoreError> {
        let mut client = borrow(&self.client)?;
        if (self.broken.get() || client.is_closed()) && !self.in_transaction.get() {
            *client = super::connect::connect(&self.url, &self.settings)
                .map_err(|message| StoreError::Unreachable(crate::redact::secrets(&message)))?;
            self.broken.set(false);
            self.statements.borrow_mut().clear();
            tracing::info!(store = %crate::redact::secrets(&self.url), "connected to the store again");
        }
        Ok(client)
    }

    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let mut client = self.client()?;
        let statement = self.prepared(&mut client, sql)?;
        let done = client.execute(&statement, &pg_args(args));
        Ok(self.watched(done)?)
    }

    /// `result`, noting an error that leaves the connection unusable (it is replaced on the
    /// next use outside a transaction).
    fn watched<T>(&self, result: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if let Err(err) = &result {
            if super::breaks_connection(err) {
                self.broken.set(true);
            }
        }
        result
    }

    fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut client = self.client()?;
        let statement = self.prepared(&mut client, sql)?;
        let rows = self.watched(client.query(&statement, &pg_args(args)))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| pg_value(row, i))
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn prepared(
        &self,
        client: &mut postgres::Client,
        sql: &str,
    ) -> Result<postgres::Statement, StoreError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.watched(client.prepare(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let done = self.client()?.batch_execute(sql);
        Ok(self.watched(done)?)
    }

    /// `BEGIN`, on a working connection.
    fn begin(&self) -> Result<(), StoreError> {
        self.batch("BEGIN")?;
        self.in_transaction.set(true);
        Ok(())
    }

    /// `COMMIT` or `ROLLBACK`; the transaction is over either way.
    fn end(&self, sql: &str) -> Result<(), StoreError> {
        let ended = borrow(&self.client)?.batch_execute(sql);
        let ended = self.watched(ended);
        self.in_transaction.set(false);
        Ok(ended?)
    }
}

impl Db {
    /// Starts a transaction; it rolls back unless committed.
    pub fn transaction(&self) -> Result<Tx<'_>, StoreError> {
        match self {
            Db::Sqlite(conn) => Ok(Tx::Sqlite(Some(conn.unchecked_transaction()?))),
            Db::Postgres(pg) => {
                pg.begin()?;
                Ok(Tx::Postgres { pg, open: true })
            }
        }
    }
}

impl Sql for Db {
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(conn) => sqlite_execute(conn, sql, args),
            Db::Postgres(pg) => pg.execute(sql, args),
        }
    }

    fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Sqlite(conn) => sqlite_query(conn, sql, args),
            Db::Postgres(pg) => pg.query(sql, args),
        }
    }
}

/// A transaction: commit it, or it rolls back when dropped.
pub enum Tx<'a> {
    /// On SQLite (taken when committed).
    Sqlite(Option<rusqlite::Transaction<'a>>),
    /// On PostgreSQL.
    Postgres {
        /// The connection, inside `BEGIN`.
        pg: &'a Pg,
        /// Not yet committed or rolled back.
        open: bool,
    },
}

impl Tx<'_> {
    /// Makes the transaction's writes durable and visible.
    pub fn commit(mut self) -> Result<(), StoreError> {
        match &mut self {
            Tx::Sqlite(tx) => match tx.take() {
                Some(tx) => Ok(tx.commit()?),
                None => Ok(()),
            },
            Tx::Postgres { pg, open } => {
                *open = false;
                pg.end("COMMIT")
            }
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let Tx::Postgres { pg, open: true } = self {
            // A failed rollback leaves the connection broken; its next use reports it.
            let _ = pg.end("ROLLBACK");
        }
    }
}

impl Sql for Tx<'_> {
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        match self {
            Tx::Sqlite(Some(tx)) => sqlite_execute(tx, sql, args),
            Tx::Sqlite(None) => Err(committed()),
            Tx::Postgres { pg, .. } => pg.execute(sql, args),
        }
    }

    fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(Some(tx)) => sqlite_query(tx, sql, args),
            Tx::Sqlite(None) => Err(committed()),
            Tx::Postgres { pg, .. } => pg.query(sql, args),
        }
    }
}

fn committed() -> StoreError {
    StoreError::Damaged {
        what: "transaction",
        message: "used after its commit".into(),
    }
}

fn borrow(
    client: &RefCell<postgres::Client>,
) -> Result<std::cell::RefMut<'_, postgres::Client>, StoreError> {
    client.try_borrow_mut().map_err(|_| StoreError::Damaged {
        what: "connection",
        message: "the PostgreSQL connection is already in use".into(),
    })
}

/// `$1` → `?1`: SQLite's numbered parameters.
fn sqlite_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn sqlite_execute(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(&sqlite_sql(sql))?;
    Ok(statement.execute(rusqlite::params_from_iter(args))? as u64)
}

fn sqlite_query(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
) -> Result<Vec<Row>, StoreError> {
    use rusqlite::types::ValueRef;
    let mut statement = conn.prepare_cached(&sqlite_sql(sql))?;
    let columns = statement.column_count();
    let mut rows = statement.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Real(v) => Value::Int(v as i64),
                ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                ValueRef::Blob(v) => Value::Blob(v.to_vec()),
            });
        }
        out.push(Row(values));
    }
    Ok(out)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

fn pg_args(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, StoreError> {
    let ty = row.columns()[i].type_().clone();
    let value = match ty {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Value::from),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        Type::VOID => None,
        _ => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT8 => v.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be stored as {ty}").into()),
            },
            Value::Text(v) => match *ty {
                Type::BYTEA => Err(format!("text cannot be stored as {ty}").into()),
                _ if <&str as ToSql>::accepts(ty) => v.as_str().to_sql(ty, out),
                _ => Err(format!("text cannot be stored as {ty}").into()),
            },
            Value::Blob(v) => v.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::BOOL | Type::BYTEA
        ) || <&str as ToSql>::accepts(ty)
    }

    postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_sqlites() {
        assert_eq!(
            sqlite_sql("SELECT '$.at' WHERE a = $1 AND b = $12 AND c = $"),
            "SELECT '$.at' WHERE a = ?1 AND b = ?12 AND c = $"
        );
    }
}
