//! Workspace apps and the web terminal, shared by the primary (`coderd`) and workspace proxies
//! (`wsproxy`): both reach agents over their own tunnels and forward browsers' requests.
//!
//! - [`names`]: how URLs name apps (paths, subdomain labels, the wildcard host).
//! - [`tokens`]: HMAC-signed exchange tokens, app cookies and signed app tokens.
//! - [`agents`]: the server's tunnel endpoint and its cached connection per agent, finding
//!   agents through an [`agents::AddressBook`].
//! - [`client`]: pooled HTTP connections to apps over tunnel streams.
//! - [`forward`]: one request forwarded to an app as the app should see it.
//! - [`terminal`]: the web terminal's WebSocket bridged to the agent's terminal session.
//!
//! Authorization is not here: the primary decides who may open what (from its database) and
//! signs a token saying so; whoever holds the key verifies it.

pub mod agents;
pub mod client;
pub mod forward;
pub mod names;
pub mod terminal;
pub mod tokens;
