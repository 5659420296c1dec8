//! The isolate's settings (wasm only): read from the Worker's env by the first request (or
//! room alarm) and kept for the isolate's life, since an isolate's env never changes. Settings
//! that do not read are not kept: every request answers the error until they are fixed.

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::settings::Settings;

thread_local! {
    /// The isolate's settings, once read (a Workers isolate runs one thread).
    static SETTINGS: RefCell<Option<Rc<Settings>>> = const { RefCell::new(None) };
}

/// The isolate's settings, read from `env` (secrets first, then vars) the first time.
pub(crate) fn isolate_settings(env: &Env) -> std::result::Result<Rc<Settings>, String> {
    if let Some(settings) = SETTINGS.with(|held| held.borrow().clone()) {
        return Ok(settings);
    }
    let text = |name: &str| env.secret(name).or_else(|_| env.var(name)).map(|value| value.to_string()).ok();
    let settings = Rc::new(Settings::read(text)?);
    SETTINGS.with(|held| *held.borrow_mut() = Some(Rc::clone(&settings)));
    Ok(settings)
}
