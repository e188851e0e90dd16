"""The seed example's tasks: an int through a .txt target."""


def func_task():
    return 99


def double(answer):
    if not isinstance(answer, int):  # 99 must arrive as 99, not "99"
        raise TypeError(f"expected the int 99, got {answer!r}")
    return answer * 2
