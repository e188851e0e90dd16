from targetrun import _stop_quietly_from_now  # the package is loaded already: no file is read

_stop_quietly_from_now()

from targetrun._entry import main  # noqa: E402

if __name__ == "__main__":
    main()
