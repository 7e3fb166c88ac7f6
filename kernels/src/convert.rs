//! Weights converted to another precision when they are loaded (`requantize=on`, and
//! the reference model of `--quality`): every matrix is expanded to f32 and stored
//! again in the asked format, the layout synthetic weights use (embedding, layer
//! matrices and output head in that format; an MoE router and the norms kept as they
//! are). Converting to f32 is exact; converting a quantized file to a finer format
//! keeps its rounding (a Q4_1 file as f16 is the Q4_1 values, not the model it was
//! made from).

use candle_core::Device;
use candle_core::quantized::QTensor;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::EngineError;
use crate::format::Precision;
use crate::weights::{HostFfn, HostMatrix, HostMlp, HostWeights};
use workloads::spec::hex;

/// `w` with its matrices in `to`; its digest is that of the source and the format.
pub fn requantize(w: HostWeights, to: Precision) -> Result<HostWeights, EngineError> {
    if w.precision == to {
        return Ok(w);
    }
    let dt = to.ggml();
    let mut bytes = 0u64;
    let mut convert = |m: &HostMatrix| -> Result<HostMatrix, EngineError> {
        let t = m.dequantize(&Device::Cpu)?;
        let q = Arc::new(QTensor::quantize(&t, dt)?);
        bytes += q.storage_size_in_bytes() as u64;
        Ok(q)
    };
    let mlp = |m: &HostMlp, c: &mut dyn FnMut(&HostMatrix) -> Result<HostMatrix, EngineError>| {
        Ok::<_, EngineError>(HostMlp {
            gate: c(&m.gate)?,
            up: c(&m.up)?,
            down: c(&m.down)?,
        })
    };
    let tied = Arc::ptr_eq(&w.embed, &w.lm_head);
    let embed = convert(&w.embed)?;
    let mut layers = Vec::with_capacity(w.layers.len());
    for l in w.layers {
        let ffn = match &l.ffn {
            HostFfn::Dense(m) => HostFfn::Dense(mlp(m, &mut convert)?),
            HostFfn::Moe { router, experts } => HostFfn::Moe {
                router: router.clone(),
                experts: experts
                    .iter()
                    .map(|m| mlp(m, &mut convert))
                    .collect::<Result<_, _>>()?,
            },
        };
        layers.push(crate::weights::HostLayer {
            wq: convert(&l.wq)?,
            wk: convert(&l.wk)?,
            wv: convert(&l.wv)?,
            wo: convert(&l.wo)?,
            ffn,
            ..l
        });
    }
    let lm_head = if tied {
        embed.clone()
    } else {
        convert(&w.lm_head)?
    };
    let mut hasher = Sha256::new();
    hasher.update(w.sha256.as_bytes());
    hasher.update(b" requantized to ");
    hasher.update(to.to_string().as_bytes());
    Ok(HostWeights {
        embed,
        layers,
        norm: w.norm,
        lm_head,
        precision: to,
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::preset::preset;
    use crate::weights::synthetic;

    fn values(m: &HostMatrix) -> Vec<f32> {
        m.dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn to_f32_is_exact_and_the_format_and_digest_change() {
        let cfg = preset("tiny-dense").unwrap();
        let q = synthetic(cfg, Precision::Q4_0, 7).unwrap();
        let before = values(&q.layers[0].wq);
        let digest = q.sha256.clone();
        let f = requantize(q, Precision::F32).unwrap();
        assert_eq!(f.precision, Precision::F32);
        assert_eq!(values(&f.layers[0].wq), before, "q4_0 -> f32 loses nothing");
        assert_ne!(f.sha256, digest);
        assert!(Arc::ptr_eq(&f.embed, &f.lm_head) == cfg.tied_embeddings);
    }

    #[test]
    fn to_q4_0_rounds_as_quantizing_does() {
        let cfg = preset("tiny-moe").unwrap();
        let direct = synthetic(cfg, Precision::Q4_0, 3).unwrap();
        let via = requantize(synthetic(cfg, Precision::F32, 3).unwrap(), Precision::Q4_0).unwrap();
        // The same f32 values quantized once, directly or after loading as f32.
        assert_eq!(values(&via.layers[1].wo), values(&direct.layers[1].wo));
        let (HostFfn::Moe { router: a, .. }, HostFfn::Moe { router: b, .. }) =
            (&via.layers[0].ffn, &direct.layers[0].ffn)
        else {
            panic!("tiny-moe has experts")
        };
        assert_eq!(values(a), values(b), "the router is kept in f32");
    }
}
