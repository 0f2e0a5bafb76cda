"""The actions that come with Conveyor.

Each module declares one action with `register_action`, and Conveyor's own distribution lists
them in the ``conveyor.actions`` entry-point group, so they are discovered like any plugin:

==================  =============================================================
``log``             write a message to the run's log
``set_output``      make the given values the step's outputs
``transform``       reshape a JSON value (template, pick, omit, map, filter, ...)
``aggregate``       reduce a list (count, sum, avg, group_by, ...)
``conditional``     choose the first branch whose condition holds
``fail``            fail the step with a message
``delay``           pause durably for a number of seconds
``wait_for_event``  wait for an external event with a correlation id
``http_request``    call an HTTP API, through the outbound address guard
``notify``          publish a message to a topic
``approval``        wait for a person to approve or reject, with a form
==================  =============================================================
"""
