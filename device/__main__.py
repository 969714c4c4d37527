import sys

from device.entry import main

sys.exit(main())
