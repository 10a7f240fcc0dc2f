import torch

from dragpd.attention import mutual_self_attention, self_attention_layers


def run(unet, latent, cond):
    return unet(latent, 500, encoder_hidden_states=cond.expand(len(latent), -1, -1)).sample


def test_self_attention_layers_in_execution_order(unet):
    layers = self_attention_layers(unet)
    assert len(layers) == 7  # 2 down + 1 mid + 4 up
    assert layers[0] is unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    assert layers[2] is unet.mid_block.attentions[0].transformer_blocks[0].attn1
    assert layers[-1] is unet.up_blocks[2].attentions[1].transformer_blocks[0].attn1


def test_edited_branch_reads_the_reference_and_hooks_go_away(unet):
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(1, 4, 16, 16, generator=generator)
    edited = torch.randn(1, 4, 16, 16, generator=generator)
    cond = torch.randn(1, 5, 32, generator=generator)
    with torch.no_grad():
        alone_ref, alone_edit = run(unet, reference, cond), run(unet, edited, cond)
        with mutual_self_attention(unet, start_layer=0) as shared:
            pair = run(unet, torch.cat([reference, edited]), cond)
            same = run(unet, torch.cat([edited, edited]), cond)
        after = run(unet, edited, cond)
    assert shared == 7
    # The reference half attends to itself: unchanged. Two equal halves: unchanged.
    assert torch.allclose(pair[:1], alone_ref, atol=1e-5)
    assert torch.allclose(same[1:], alone_edit, atol=1e-5)
    # The edited half reads another image's keys and values: it changes.
    assert (pair[1:] - alone_edit).abs().max() > 1e-2
    assert torch.equal(after, alone_edit)
    assert all(not layer._forward_pre_hooks for layer in self_attention_layers(unet))


def test_start_layer_past_the_end_changes_nothing(unet):
    latent = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    cond = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = run(unet, latent, cond)
        with mutual_self_attention(unet, start_layer=99) as shared:
            hooked = run(unet, latent, cond)
    assert shared == 0 and torch.equal(plain, hooked)


def test_hooks_are_removed_when_the_forward_fails(unet):
    try:
        with mutual_self_attention(unet, start_layer=0):
            run(unet, torch.randn(3, 4, 16, 16), torch.randn(1, 5, 32))
    except ValueError as error:
        assert "odd batch" in str(error)
    else:
        raise AssertionError("an odd batch must be refused")
    assert all(not layer._forward_pre_hooks for layer in self_attention_layers(unet))
