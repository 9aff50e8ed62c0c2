//! A database per test on the test run's PostgreSQL cluster.

use rand::Rng;

/// Names the cluster `scripts/test` starts for the whole run.
const ADMIN_URL_VARIABLE: &str = "CODER_TEST_POSTGRES_URL";

/// A fresh, empty database. Left in place afterwards: the whole cluster is thrown away at the
/// end of the run.
pub struct TestDb {
    /// The database's URL.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDb {
    /// Creates a database named after nothing in particular (random), so tests never share.
    pub async fn new() -> Self {
        crate::init_crypto();
        let admin_url = std::env::var(ADMIN_URL_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{ADMIN_URL_VARIABLE} is not set: run the tests with ./scripts/test, which \
                 starts a throwaway PostgreSQL for the run"
            )
        });
        let suffix: u64 = rand::rng().random();
        let name = format!("test_{suffix:016x}");
        let url = store::Store::create_database(&admin_url, &name)
            .await
            .unwrap_or_else(|err| panic!("creating test database {name}: {err:?}"));
        Self {
            url,
            admin_url,
            name,
        }
    }

    /// Refuses new connections and ends the open ones, as if the database went away.
    pub async fn close(&self) {
        store::Store::set_database_open(&self.admin_url, &self.name, false)
            .await
            .unwrap_or_else(|err| panic!("closing test database {}: {err:?}", self.name));
    }

    /// Accepts connections again after [`TestDb::close`].
    pub async fn reopen(&self) {
        store::Store::set_database_open(&self.admin_url, &self.name, true)
            .await
            .unwrap_or_else(|err| panic!("reopening test database {}: {err:?}", self.name));
    }
}
