//! Which [`Protocol`] speaks each API: the one place an API is matched to its
//! implementation.

use results::Api;

use crate::anthropic::AnthropicMessages;
use crate::codec::Protocol;
use crate::openai::{OpenAiChat, OpenAiCompletions};

/// The protocol of `api`.
pub fn protocol(api: Api) -> Box<dyn Protocol> {
    match api {
        Api::Chat => Box::new(OpenAiChat),
        Api::Completions => Box::new(OpenAiCompletions),
        Api::Messages => Box::new(AnthropicMessages),
    }
}
