"""The generator losses of DSDG, exactly as the original computes them (docs/ORIGINAL.md 2.6).

Notation: x_s spoof image, x_l live image, x_hat the decoder output split into the two, z_t the
spoof-pattern latent, z_Is / z_Il the identity latents of the spoof and live encoders, f(.) the
frozen LightCNN feature (L2-normalised, see networks.light_cnn.identity_features).

  rec  = 1/2 * mean_B sum_{6xSxS} (x_hat - x)^2
  kl   = 1/3 * (KL_Is + KL_Il + KL_t),  KL = mean_B -1/2 sum_d (1 + lv - mu^2 - e^lv)
  mmd  = l_mmd  * mean_d | mean_B z_Is - mean_B z_Il |      (an L1 between batch means, not an MMD)
  ip   = l_ip   * 1/2 * (MSE(f(x_hat_s), f(x_s)) + MSE(f(x_hat_l), f(x_l)))   (targets detached)
  pair = l_pair * MSE(f(x_hat_s), f(x_hat_l))                                 (no detach)
  cls  = l_type * CE(Cls(z_t), type)
  ort  = l_ort  * | mean_B <z_t, z_Is> |                     (raw dot product; abs after the mean)
  total = rec + w * (kl + mmd + ip + pair + cls + ort),  w = 0.01 in epoch 1 (1-based), else 1.

Weights of the original ``train_generator.sh``: l_mmd 50, l_ip 1000, l_pair 5, l_type 10, l_ort 1.

Two terms use batch means (mmd, ort). Under DDP each process holds a slice of the batch, so those
means are taken over the whole global batch with a differentiable all-reduce (:func:`batch_mean`,
``utils.dist.all_reduce_sum_autograd``); with DDP's gradient averaging this gives exactly the
gradient of the single-process loss on the full batch, as the original's DataParallel did.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from utils.dist import all_reduce_sum_autograd

TERMS = ("rec", "kl", "mmd", "ip", "pair", "cls", "ort")


@dataclass(frozen=True)
class LossWeights:
    """Loss weights and warm-up; defaults are the values of the original ``train_generator.sh``."""
    mmd: float = 50.0
    ip: float = 1000.0
    pair: float = 5.0
    type: float = 10.0
    ort: float = 1.0
    warmup_epochs: int = 1         # epochs (1-based) during which the non-rec terms are scaled
    warmup_factor: float = 0.01

    def as_dict(self) -> dict:
        return asdict(self)


def batch_mean(z: torch.Tensor) -> torch.Tensor:
    """Mean over dim 0 of the *global* batch: all ranks' rows under DDP, differentiably."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        # Every rank holds the same number of rows (DistributedSampler pads), so sum / (B * world).
        return all_reduce_sum_autograd(z.sum(0)) / (z.shape[0] * dist.get_world_size())
    return z.mean(0)


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1/2 * per-sample sum of squared errors, averaged over the batch."""
    return 0.5 * (reconstruction - target).pow(2).flatten(1).sum(1).mean()


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(0, I)), summed over dims, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def mean_alignment_loss(z_spoof_id: torch.Tensor, z_live_id: torch.Tensor) -> torch.Tensor:
    """The original's "mmd": mean over dims of |batch mean(z_Is) - batch mean(z_Il)|."""
    return (batch_mean(z_spoof_id) - batch_mean(z_live_id)).abs().mean()


def identity_preserving_loss(feat_rec_spoof, feat_spoof, feat_rec_live, feat_live) -> torch.Tensor:
    """1/2 * (MSE(f(x_hat_s), f(x_s)) + MSE(f(x_hat_l), f(x_l))), the real-image features detached."""
    return 0.5 * (F.mse_loss(feat_rec_spoof, feat_spoof.detach()) + F.mse_loss(feat_rec_live, feat_live.detach()))


def pair_loss(feat_rec_spoof: torch.Tensor, feat_rec_live: torch.Tensor) -> torch.Tensor:
    """MSE between the identities of the two reconstructions (both sides get gradients)."""
    return F.mse_loss(feat_rec_spoof, feat_rec_live)


def type_classification_loss(logits: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, types)


def orthogonal_loss(z_type: torch.Tensor, z_spoof_id: torch.Tensor) -> torch.Tensor:
    """| batch mean of <z_t, z_Is> |: a raw dot product, the absolute value taken after the mean."""
    return batch_mean((z_type * z_spoof_id).sum(1, keepdim=True)).abs().squeeze(0)


def warmup_scale(epoch: int, weights: LossWeights) -> float:
    """0.01 during the warm-up epochs (1-based ``epoch``), else 1."""
    return weights.warmup_factor if epoch <= weights.warmup_epochs else 1.0


def generator_losses(*, spoof, live, rec_spoof, rec_live, mu_id_spoof, logvar_id_spoof, mu_type, logvar_type,
                     mu_id_live, logvar_id_live, z_type, z_id_spoof, z_id_live, type_logits, types,
                     feat_spoof=None, feat_live=None, feat_rec_spoof=None, feat_rec_live=None,
                     weights: LossWeights = LossWeights(), epoch: int = 2) -> dict[str, torch.Tensor]:
    """Every weighted term of docs/ORIGINAL.md 2.6 plus ``total``. Features None: no ip/pair terms (reported as 0).

    Images are [B,3,S,S] in [0,1]; latents [B,hdim]; logits [B,attack_types]; features [B,256].
    The returned terms carry their lambda (as the original's logged values did); the warm-up factor
    is applied only inside ``total``.
    """
    terms = {
        "rec": reconstruction_loss(torch.cat([rec_spoof, rec_live], 1), torch.cat([spoof, live], 1)),
        "kl": (kl_loss(mu_id_spoof, logvar_id_spoof) + kl_loss(mu_id_live, logvar_id_live)
               + kl_loss(mu_type, logvar_type)) / 3.0,
        "mmd": weights.mmd * mean_alignment_loss(z_id_spoof, z_id_live),
        "cls": weights.type * type_classification_loss(type_logits, types),
        "ort": weights.ort * orthogonal_loss(z_type, z_id_spoof),
    }
    if feat_rec_spoof is not None:
        terms["ip"] = weights.ip * identity_preserving_loss(feat_rec_spoof, feat_spoof, feat_rec_live, feat_live)
        terms["pair"] = weights.pair * pair_loss(feat_rec_spoof, feat_rec_live)
    else:
        zero = terms["rec"].new_zeros(())
        terms["ip"], terms["pair"] = zero, zero
    scale = warmup_scale(epoch, weights)
    others = sum(terms[k] for k in TERMS if k != "rec")
    out = {k: terms[k] for k in TERMS}
    out["total"] = terms["rec"] + scale * others
    return out
