/* Tensors: creation, views, reshape within capacity, transfers, and the errors. */
#include <string.h>

#include "testutil.h"

static void test_new_is_zeroed_and_aligned(void **state)
{
    bl_test_env *env = *state;
    int64_t shape[3] = {2, 3, 4};
    bl_tensor *t = NULL;
    BL_ASSERT_OK(env->ctx, bl_tensor_new(env->ctx, env->dev, shape, 3, &t));
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->numel, 24);
    assert_int_equal(t->capacity, 24);
    assert_int_equal(t->shape[3], 1);
    assert_int_equal((uintptr_t)t->data % 64, 0);
    float host[24];
    memset(host, 0xff, sizeof host);
    BL_ASSERT_OK(env->ctx, bl_tensor_download(env->ctx, t, host));
    for (int i = 0; i < 24; i++)
        assert_true(host[i] == 0.0f);
    bl_tensor_fill(t, 2.5f);
    BL_ASSERT_OK(env->ctx, bl_tensor_download(env->ctx, t, host));
    for (int i = 0; i < 24; i++)
        assert_true(host[i] == 2.5f);
    bl_tensor_free(t);
    bl_tensor_free(NULL);
}

static void test_upload_download_roundtrip(void **state)
{
    bl_test_env *env = *state;
    int64_t shape[2] = {5, 7};
    bl_tensor *t;
    BL_ASSERT_OK(env->ctx, bl_tensor_new(env->ctx, env->dev, shape, 2, &t));
    float in[35], out[35];
    for (int i = 0; i < 35; i++)
        in[i] = (float)i * 0.25f - 3.0f;
    BL_ASSERT_OK(env->ctx, bl_tensor_upload(env->ctx, t, in));
    BL_ASSERT_OK(env->ctx, bl_tensor_download(env->ctx, t, out));
    assert_memory_equal(in, out, sizeof in);
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "NULL", bl_tensor_upload(env->ctx, t, NULL));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "NULL", bl_tensor_download(env->ctx, NULL, out));
    bl_tensor_free(t);
}

static void test_views(void **state)
{
    bl_test_env *env = *state;
    int64_t shape[1] = {12};
    bl_tensor *t;
    BL_ASSERT_OK(env->ctx, bl_tensor_new(env->ctx, env->dev, shape, 1, &t));
    float host[12];
    for (int i = 0; i < 12; i++)
        host[i] = (float)i;
    BL_ASSERT_OK(env->ctx, bl_tensor_upload(env->ctx, t, host));

    bl_tensor v;
    int64_t vs[2] = {2, 3};
    BL_ASSERT_OK(env->ctx, bl_tensor_view(env->ctx, t, 4, vs, 2, &v));
    assert_ptr_equal(v.data, t->data + 4);
    assert_int_equal(v.numel, 6);
    assert_int_equal(v.ndim, 2);
    float got[6];
    BL_ASSERT_OK(env->ctx, bl_tensor_download(env->ctx, &v, got));
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == (float)(4 + i));
    bl_tensor_fill(&v, -1.0f); /* writes through to the base */
    BL_ASSERT_OK(env->ctx, bl_tensor_download(env->ctx, t, host));
    for (int i = 0; i < 12; i++)
        assert_true(host[i] == (i >= 4 && i < 10 ? -1.0f : (float)i));

    /* the last elements exactly, and one past the end */
    int64_t two[1] = {2};
    BL_ASSERT_OK(env->ctx, bl_tensor_view(env->ctx, t, 10, two, 1, &v));
    BL_ASSERT_ERR(env->ctx, BL_ESHAPE, "offset 11", bl_tensor_view(env->ctx, t, 11, two, 1, &v));
    BL_ASSERT_ERR(env->ctx, BL_ESHAPE, "holds 12", bl_tensor_view(env->ctx, t, -1, two, 1, &v));
    /* a view cannot be reshaped past its own range */
    BL_ASSERT_OK(env->ctx, bl_tensor_view(env->ctx, t, 0, two, 1, &v));
    int64_t three[1] = {3};
    BL_ASSERT_ERR(env->ctx, BL_ESHAPE, "holds 2", bl_tensor_reshape(env->ctx, &v, three, 1));
    bl_tensor_free(t);
}

static void test_reshape_within_capacity(void **state)
{
    bl_test_env *env = *state;
    int64_t big[2] = {64, 10};
    bl_tensor *t;
    BL_ASSERT_OK(env->ctx, bl_tensor_new(env->ctx, env->dev, big, 2, &t));
    size_t allocs = env->dev->alloc_count;
    int64_t small[2] = {8, 10};
    BL_ASSERT_OK(env->ctx, bl_tensor_reshape(env->ctx, t, small, 2));
    assert_int_equal(t->numel, 80);
    assert_int_equal(t->capacity, 640);
    assert_int_equal(t->shape[0], 8);
    int64_t four[4] = {2, 2, 2, 80};
    BL_ASSERT_OK(env->ctx, bl_tensor_reshape(env->ctx, t, four, 4));
    assert_int_equal(t->numel, 640);
    assert_int_equal(env->dev->alloc_count, allocs); /* reshaping never allocates */

    int64_t too_big[2] = {65, 10};
    BL_ASSERT_ERR(env->ctx, BL_ESHAPE, "[65, 10] needs 650",
                  bl_tensor_reshape(env->ctx, t, too_big, 2));
    assert_int_equal(t->numel, 640); /* unchanged on error */
    assert_int_equal(t->ndim, 4);
    bl_tensor_free(t);
}

static void test_bad_shapes(void **state)
{
    bl_test_env *env = *state;
    bl_tensor *t = (bl_tensor *)(uintptr_t)0x1; /* must stay untouched on error */
    int64_t zero[2] = {3, 0};
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "[3, 0]", bl_tensor_new(env->ctx, env->dev, zero, 2, &t));
    int64_t neg[1] = {-4};
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "-4", bl_tensor_new(env->ctx, env->dev, neg, 1, &t));
    int64_t five[5] = {1, 1, 1, 1, 1};
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "5 dimensions",
                  bl_tensor_new(env->ctx, env->dev, five, 5, &t));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "0 dimensions",
                  bl_tensor_new(env->ctx, env->dev, five, 0, &t));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "NULL", bl_tensor_new(env->ctx, env->dev, NULL, 1, &t));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "NULL", bl_tensor_new(env->ctx, NULL, five, 1, &t));
    int64_t huge[2] = {INT64_MAX / 2, 4};
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "too large",
                  bl_tensor_new(env->ctx, env->dev, huge, 2, &t));
    assert_ptr_equal(t, (bl_tensor *)(uintptr_t)0x1);

    int64_t n;
    int64_t ok[3] = {2, 3, 4};
    BL_ASSERT_OK(env->ctx, bl_shape_check(env->ctx, "x", ok, 3, &n));
    assert_int_equal(n, 24);
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "weights", bl_shape_check(env->ctx, "weights", zero, 2, &n));
}

static void test_budget_applies_to_tensors(void **state)
{
    bl_test_env *env = *state;
    size_t before = env->dev->bytes_in_use;
    env->dev->budget_bytes = before + 1000;
    int64_t shape[1] = {1000}; /* 4000 bytes */
    bl_tensor *t = NULL;
    BL_ASSERT_ERR(env->ctx, BL_ENOMEM, "budget", bl_tensor_new(env->ctx, env->dev, shape, 1, &t));
    assert_null(t);
    assert_int_equal(env->dev->bytes_in_use, before);
    env->dev->budget_bytes = 0;
    BL_ASSERT_OK(env->ctx, bl_tensor_new(env->ctx, env->dev, shape, 1, &t));
    assert_int_equal(env->dev->bytes_in_use, before + 4000);
    bl_tensor_free(t);
    assert_int_equal(env->dev->bytes_in_use, before);
}

static void test_shape_str(void **state)
{
    char buf[32];
    int64_t s[3] = {1, 28, 28};
    assert_string_equal(bl_shape_str(s, 3, buf, sizeof buf), "[1, 28, 28]");
    assert_string_equal(bl_shape_str(s, 1, buf, sizeof buf), "[1]");
    char tiny[5];
    bl_shape_str(s, 3, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 4); /* cut, but terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_is_zeroed_and_aligned),
        cmocka_unit_test(test_upload_download_roundtrip),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_reshape_within_capacity),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_budget_applies_to_tensors),
        cmocka_unit_test(test_shape_str),
    };
    return cmocka_run_group_tests_name("tensor", tests, bl_test_setup, bl_test_teardown);
}
