//! `agent user add NAME --role R`: creates an API user in the store and
//! prints its bearer token, once, alone on stdout. Only the token's hash
//! is stored.

use std::collections::BTreeMap;

use callbridge_crm_store::{ApiToken, PersonName, Role, Store};

use crate::cli::UserAdd;
use crate::settings::Settings;

/// Runs `user add`; returns the exit status.
pub fn add(args: &UserAdd, env: &BTreeMap<String, String>) -> i32 {
    let role: Role = match args.role.trim().parse() {
        Ok(r) => r,
        Err(_) => {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            eprintln!(
                "agent: --role = {:?}: expected one of {}",
                args.role,
                names.join(", ")
            );
            return 2;
        }
    };
    let name = match PersonName::new(args.name.trim()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("agent: NAME = {:?}: expected a user name ({e})", args.name);
            return 2;
        }
    };
    let settings = match Settings::load(&args.file.config, env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent: {e}");
            return 2;
        }
    };
    let result = (|| {
        let token = ApiToken::generate()?;
        let mut store = Store::open(&settings.database)?;
        store.create_user(&name, role, &token, jiff::Timestamp::now())?;
        Ok::<_, callbridge_crm_store::Error>(token)
    })();
    match result {
        Ok(token) => {
            println!("{}", token.expose());
            0
        }
        Err(e) => {
            eprintln!(
                "agent: cannot create the user in {}: {e}",
                settings.database.display()
            );
            1
        }
    }
}
