//! The one error for a Kubernetes API call that failed: what the call was
//! for (`list nodes`, `Secret ns/name`), and the client's error.

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ApiError {
    pub what: String,
    #[source]
    pub source: kube::Error,
}

impl ApiError {
    /// For `map_err`: names the call the error came from.
    pub fn context(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ApiError {
        let what = what.into();
        move |source| ApiError { what, source }
    }

    /// The HTTP status the server answered with, when it answered.
    pub fn code(&self) -> Option<u16> {
        match &self.source {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}
